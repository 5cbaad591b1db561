package dev.jdiffusion.samplers;

/** The conformance metrics: relative L2 error and maximum absolute error, with the worst seen so far. */
final class Errors {
    /** The name printed for {@link #worstRel}. */
    String relName = "rel_l2_err";
    double worstRel;
    double worstAbs;
    String worstWhat = "";
    final StringBuilder failures = new StringBuilder();

    static double relL2(double[] got, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = got[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    static double maxAbs(double[] got, double[] ref) {
        double m = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs(got[i] - ref[i]);
            m = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(m, d);
        }
        return m;
    }

    /** Compares and records; a length mismatch or a value beyond either bound is a failure. */
    void compare(String what, double[] got, double[] ref, double relTol, double absTol) {
        if (got == null || got.length != ref.length) {
            failures.append(what).append(": got ").append(got == null ? "nothing" : got.length + " values")
                    .append(", expected ").append(ref.length).append("; ");
            worstRel = Double.POSITIVE_INFINITY;
            return;
        }
        double rel = relL2(got, ref);
        double abs = maxAbs(got, ref);
        if (Double.isNaN(rel)) {
            rel = Double.POSITIVE_INFINITY;
        }
        if (rel > worstRel || worstWhat.isEmpty()) {
            worstRel = Math.max(worstRel, rel);
            worstWhat = what;
        }
        worstAbs = Math.max(worstAbs, abs);
        if (!(rel <= relTol && abs <= absTol)) {
            failures.append(String.format("%s: rel_l2_err=%.3g (tol %.1g) max_abs_err=%.3g (tol %.1g); ", what, rel,
                    relTol, abs, absTol));
        }
    }

    void check(boolean ok, String message) {
        if (!ok) {
            failures.append(message).append("; ");
        }
    }

    boolean passed() {
        return failures.length() == 0;
    }
}
