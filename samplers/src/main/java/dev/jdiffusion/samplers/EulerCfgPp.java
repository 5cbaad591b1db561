package dev.jdiffusion.samplers;

/**
 * Euler with CFG++ (Chung et al. 2024; ComfyUI {@code sample_euler_cfg_pp} and, with eta &gt; 0,
 * {@code sample_euler_ancestral_cfg_pp}): the step's direction comes from the unconditional
 * prediction, its landing point from the guided one, so guidance scales near 1 stay on the data
 * manifold. eta = 0 is the deterministic sampler; eta = 1 the ancestral one.
 */
public record EulerCfgPp(double eta, double sNoise) implements Sampler {
    public EulerCfgPp() {
        this(0, 0);
    }

    public EulerCfgPp {
        Ancestral.check(eta, sNoise);
    }

    /** The ancestral variant ("Euler a CFG++"). */
    public static EulerCfgPp ancestral() {
        return new EulerCfgPp(1, 1);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, s);
            Sampling.report(listener, new Step(i, s, s, x, p.denoised()));
            if (next == 0) {
                x = p.denoised().clone();
                continue;
            }
            double[] d = Vec.derivative(x, p.uncond(), s);
            double[] du = Sampling.ancestralStep(s, next, eta);
            x = Vec.lin(1, p.denoised(), du[0], d);
            if (eta > 0 && sNoise > 0) {
                Vec.addScaled(x, sNoise * du[1], noise.next(s, next));
            }
        }
        return x;
    }
}
