package dev.jdiffusion.samplers;

/**
 * DDIM CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance for
 * Diffusion Models"; A1111's "DDIM CFG++"): {@link Ddim}, but the sample is re-noised along the
 * unconditional eps instead of the guided one, which keeps it near the data manifold at small
 * guidance scales. CFG++ guidance scales live in [0, 1]: A1111 divides the user's CFG scale by
 * {@link #CFG_SCALE_DIVISOR} for this sampler ({@link SamplerNames.Resolved#cfgScaleMultiplier}).
 * The model should be a {@link GuidedDenoiser}; for a plain denoiser it is DDIM.
 */
public record DdimCfgPp(double eta) implements Sampler {
    /** A1111 maps CFG scales [0, 12.5] onto CFG++'s [0, 1]. */
    public static final double CFG_SCALE_DIVISOR = 12.5;

    public DdimCfgPp {
        if (!(eta >= 0) || Double.isInfinite(eta)) {
            throw new IllegalArgumentException("DDIM eta must be finite and >= 0, got " + eta);
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, sigma);
            Sampling.report(listener, new Step(i, sigma, sigma, x, p.denoised()));
            if (next == 0) {
                x = p.denoised().clone();
                continue;
            }
            double[] epsUncond = Vec.derivative(x, p.uncond(), sigma);
            double ns = Ddim.noiseSigma(sigma, next, eta);
            x = Ddim.update(p.denoised(), epsUncond, next, ns, ns > 0 ? noise.next(sigma, next) : null);
        }
        return x;
    }
}
