package dev.jdiffusion.samplers;

/**
 * A denoiser in the k-diffusion convention: given a noisy sample {@code x} (a batch, flattened
 * row-major) at noise level {@code sigma}, the model's estimate of the clean sample,
 * {@code denoised = D(x, sigma)}. Every sampler in this package sees the model only through this.
 */
@FunctionalInterface
public interface Denoiser {
    /** The estimate of the clean sample; a new array of {@code x.length} elements ({@code x} is left as it is). */
    double[] denoise(double[] x, double sigma);
}
