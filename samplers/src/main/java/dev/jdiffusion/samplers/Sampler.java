package dev.jdiffusion.samplers;

/**
 * A sampler: integrates from the first sigma of {@code sigmas} down to its last (0 for a full
 * run), starting from {@code x} (noise already scaled to the first sigma), asking {@code model}
 * for denoised estimates and {@code noise} for fresh noise, and reporting every step to
 * {@code listener}. Returns the final sample; {@code x} is not modified.
 */
@FunctionalInterface
public interface Sampler {
    double[] sample(Denoiser model, double[] x, double[] sigmas, NoiseSource noise, StepListener listener);
}
