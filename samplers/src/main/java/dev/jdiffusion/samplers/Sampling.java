package dev.jdiffusion.samplers;

/** Pieces shared by several samplers. */
final class Sampling {
    private Sampling() {
    }

    /** (sigmaDown, sigmaUp) of an ancestral step from {@code from} to {@code to} with the given eta. */
    static double[] ancestralStep(double from, double to, double eta) {
        if (eta == 0) {
            return new double[] {to, 0};
        }
        double up = Math.min(to, eta * Math.sqrt(to * to * (from * from - to * to) / (from * from)));
        double down = Math.sqrt(to * to - up * up);
        return new double[] {down, up};
    }

    /** Reports a step; throws when the listener cancels. */
    static void report(StepListener listener, Step step) {
        if (listener != null && !listener.onStep(step)) {
            throw new SamplingCancelledException(step.index());
        }
    }

    static double t(double sigma) {
        return -Math.log(sigma);
    }

    static double sigma(double t) {
        return Math.exp(-t);
    }

    /** The schedule's last sigma, or the one before it when the last is 0: where DPM fast/adaptive stop. */
    static double lastNonzero(double[] sigmas) {
        double last = sigmas[sigmas.length - 1];
        return last > 0 ? last : sigmas[sigmas.length - 2];
    }

    static void requireSchedule(double[] sigmas) {
        if (sigmas == null || sigmas.length < 2) {
            throw new IllegalArgumentException("a sigma schedule needs at least 2 values (one step), got "
                    + (sigmas == null ? "none" : sigmas.length));
        }
        for (int i = 0; i < sigmas.length; i++) {
            if (!(sigmas[i] >= 0) || Double.isInfinite(sigmas[i])) {
                throw new IllegalArgumentException("sigma " + i + " of the schedule is " + sigmas[i]
                        + "; sigmas must be finite and non-negative");
            }
        }
    }
}
