package dev.jdiffusion.samplers;

/**
 * The second-order multistep exponential integrator of the RES family (Zhang et al. 2023; ComfyUI
 * {@code sample_res_multistep}, {@code _ancestral} with eta &gt; 0, and their {@code _cfg_pp} forms):
 * phi-function weights on the current and the previous estimate, steps of varying size. The first
 * step, and any step that lands on sigma 0, is an Euler step.
 */
public record ResMultistep(double eta, double sNoise, boolean cfgPp) implements Sampler {
    public ResMultistep() {
        this(0, 1, false);
    }

    public ResMultistep {
        Ancestral.check(eta, sNoise);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] oldDenoised = null;
        double oldSigmaDown = Double.NaN;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, s);
            double[] den = p.denoised();
            double[] u = p.uncond();
            double[] du = Sampling.ancestralStep(s, next, eta);
            double sd = du[0];
            Sampling.report(listener, new Step(i, s, s, x, den));
            if (sd == 0 || oldDenoised == null) {
                if (cfgPp) {
                    x = Vec.lin(1, den, sd / s, Vec.lin(1, x, -1, u));
                } else {
                    Vec.addScaled(x, sd - s, Vec.derivative(x, den, s));
                }
            } else {
                double t = Sampling.t(s);
                double h = Sampling.t(sd) - t;
                double c2 = (Sampling.t(sigmas[i - 1]) - Sampling.t(oldSigmaDown)) / h;
                double phi1 = phi1(-h);
                double phi2 = phi2(-h);
                double b1 = nanToZero(phi1 - phi2 / c2);
                double b2 = nanToZero(phi2 / c2);
                double decay = Math.exp(-h);
                double[] cur = cfgPp ? u : den;
                double[] out = new double[x.length];
                for (int k = 0; k < x.length; k++) {
                    double xk = cfgPp ? x[k] + (den[k] - u[k]) : x[k];
                    out[k] = decay * xk + h * (b1 * cur[k] + b2 * oldDenoised[k]);
                }
                x = out;
            }
            if (next > 0) {
                Vec.addScaled(x, sNoise * du[1], noise.next(s, next));
            }
            oldDenoised = cfgPp ? u : den;
            oldSigmaDown = sd;
        }
        return x;
    }

    static double phi1(double z) {
        return Math.expm1(z) / z;
    }

    static double phi2(double z) {
        return (phi1(z) - 1) / z;
    }

    private static double nanToZero(double v) {
        return Double.isNaN(v) ? 0 : v;
    }
}
