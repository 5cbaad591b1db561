package dev.jdiffusion.samplers;

/**
 * The conformance cases' closed-form denoisers: data independent per element, Gaussian
 * N(mu, s²) or a two-component Gaussian mixture; D(x, σ) is the exact posterior mean.
 */
final class ToyDenoiser implements Denoiser {
    private final double[] muA;
    private final double[] muB;
    private final double sA;
    private final double sB;
    private final double wA;

    private ToyDenoiser(double[] muA, double[] muB, double sA, double sB, double wA) {
        this.muA = muA;
        this.muB = muB;
        this.sA = sA;
        this.sB = sB;
        this.wA = wA;
    }

    static ToyDenoiser gaussian(double[] mu, double s) {
        return new ToyDenoiser(mu, null, s, 0, 1);
    }

    static ToyDenoiser gmm2(double[] muA, double[] muB, double sA, double sB, double wA) {
        return new ToyDenoiser(muA, muB, sA, sB, wA);
    }

    /** The denoiser a manifest's {@code denoiser} block describes, with tensors under {@code prefix} ("toy." or "toy.cond."). */
    static ToyDenoiser of(ConformanceCase c, java.util.Map<String, Object> spec, String prefix) {
        java.util.Map<String, Object> p = ConformanceCase.asMap(spec.get("params"));
        String type = (String) spec.get("type");
        return switch (type) {
            case "gaussian" -> gaussian(c.tensor(prefix + "mu"), ConformanceCase.num(p.get("s")));
            case "gmm2" -> gmm2(c.tensor(prefix + "mu_a"), c.tensor(prefix + "mu_b"), ConformanceCase.num(p.get("s_a")),
                    ConformanceCase.num(p.get("s_b")), ConformanceCase.num(p.get("w_a")));
            default -> throw new IllegalArgumentException("unknown toy denoiser " + type);
        };
    }

    @Override
    public double[] denoise(double[] x, double sigma) {
        double[] out = new double[x.length];
        int n = muA.length;
        double s2 = sigma * sigma;
        for (int i = 0; i < x.length; i++) {
            double mA = muA[i % n];
            if (muB == null) {
                out[i] = (sA * sA * x[i] + s2 * mA) / (sA * sA + s2);
                continue;
            }
            double mB = muB[i % n];
            double vA = sA * sA + s2;
            double vB = sB * sB + s2;
            double lA = Math.log(wA) - 0.5 * Math.log(vA) - (x[i] - mA) * (x[i] - mA) / (2 * vA);
            double lB = Math.log(1 - wA) - 0.5 * Math.log(vB) - (x[i] - mB) * (x[i] - mB) / (2 * vB);
            double gA = 0.5 * (1 + Math.tanh((lA - lB) / 2));
            out[i] = gA * (sA * sA * x[i] + s2 * mA) / vA + (1 - gA) * (sB * sB * x[i] + s2 * mB) / vB;
        }
        return out;
    }
}
