package dev.jdiffusion.samplers;

/**
 * What a sampler reports at each step, as k-diffusion's callback does: the step index, the sigma
 * of the step (and the raised sigma-hat where churn raised it), the sample {@code x} at the start
 * of the step and the model's {@code denoised} estimate there. The arrays are the sampler's own:
 * copy them to keep them.
 *
 * @param adaptive for DPM adaptive only (else {@code null}): the step-size controller's attempt
 */
public record Step(int index, double sigma, double sigmaHat, double[] x, double[] denoised, Adaptive adaptive) {
    public Step(int index, double sigma, double sigmaHat, double[] x, double[] denoised) {
        this(index, sigma, sigmaHat, x, denoised, null);
    }

    /** One attempt of DPM adaptive: time {@code t = -log sigma}, step size h, error estimate, accepted or not. */
    public record Adaptive(double t, double tNext, double h, double error, boolean accepted) {
    }
}
