package dev.jdiffusion.samplers;

/**
 * DPM-Solver++(2M) with CFG++ (ComfyUI {@code sample_dpmpp_2m_cfg_pp}): the multistep update of
 * {@link DpmPp2m}, with the exponential integrator's decay applied to the unconditional prediction
 * and the second-order correction taken between the guided prediction and the previous
 * unconditional one.
 */
public record DpmPp2mCfgPp() implements Sampler {
    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] oldUncond = null;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, s);
            Sampling.report(listener, new Step(i, s, s, x, p.denoised()));
            double[] den = p.denoised();
            double[] u = p.uncond();
            double[] out;
            if (next == 0) {
                out = den.clone();
            } else {
                out = new double[x.length];
                double t = Sampling.t(s);
                double h = Sampling.t(next) - t;
                double decay = Math.exp(-h);
                if (oldUncond == null) {
                    for (int k = 0; k < x.length; k++) {
                        out[k] = den[k] - decay * u[k] + decay * x[k];
                    }
                } else {
                    double r = (t - Sampling.t(sigmas[i - 1])) / h;
                    double c = -Math.expm1(-h) / (2 * r);
                    for (int k = 0; k < x.length; k++) {
                        out[k] = den[k] + (-decay * u[k] + c * (den[k] - oldUncond[k])) + decay * x[k];
                    }
                }
            }
            x = out;
            oldUncond = u;
        }
        return x;
    }
}
