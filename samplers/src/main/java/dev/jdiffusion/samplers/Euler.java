package dev.jdiffusion.samplers;

/** Euler's method on the probability-flow ODE dx/dσ = (x − D(x, σ))/σ (Karras et al. 2022, Algorithm 2 without the 2nd-order correction). */
public record Euler(Churn churn) implements Sampler {
    public Euler() {
        this(Churn.NONE);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigmaHat = churn.apply(x, sigmas, i, noise);
            double[] denoised = model.denoise(x, sigmaHat);
            double[] d = Vec.derivative(x, denoised, sigmaHat);
            Sampling.report(listener, new Step(i, sigmas[i], sigmaHat, x, denoised));
            Vec.addScaled(x, sigmas[i + 1] - sigmaHat, d);
        }
        return x;
    }
}
