package dev.jdiffusion.samplers;

/**
 * Latent Consistency Model sampling (Luo et al. 2023; ComfyUI {@code sample_lcm}): jump to the
 * model's clean estimate, then re-noise it to the next sigma with fresh noise.
 */
public record Lcm() implements Sampler {
    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double[] denoised = model.denoise(x, sigmas[i]);
            Sampling.report(listener, new Step(i, sigmas[i], sigmas[i], x, denoised));
            x = denoised;
            if (sigmas[i + 1] > 0) {
                x = Vec.addScaled(x.clone(), sigmas[i + 1], noise.next(sigmas[i], sigmas[i + 1]));
            }
        }
        return x;
    }
}
