package dev.jdiffusion.samplers;

/**
 * DDIM (Song et al. 2021, eq. 12) written on the denoiser: with a = 1/(1 + σ²) the DDPM ᾱ of a
 * sigma, the step from σ to σ' keeps the predicted x0, re-noises along the predicted eps and adds
 * fresh noise of VP standard deviation eta·sqrt((1 − ᾱ')/(1 − ᾱ)·(1 − ᾱ/ᾱ')). With eta = 0 it is
 * Euler's method on the probability-flow ODE. CompVis's sampler is this one run on
 * {@link DiscreteSchedule#ddimSigmas}; the sample stays in k-diffusion's scaling (x/√ᾱ).
 */
public record Ddim(double eta) implements Sampler {
    public Ddim {
        if (!(eta >= 0) || Double.isInfinite(eta)) {
            throw new IllegalArgumentException("DDIM eta must be finite and >= 0, got " + eta);
        }
    }

    /** The standard deviation (in k-diffusion scaling) of the fresh noise of a step from sigma to sigmaNext. */
    static double noiseSigma(double sigma, double sigmaNext, double eta) {
        double a = 1 / (1 + sigma * sigma);
        double aPrev = 1 / (1 + sigmaNext * sigmaNext);
        double vp = eta * Math.sqrt((1 - aPrev) / (1 - a) * (1 - a / aPrev));
        return vp / Math.sqrt(aPrev);
    }

    /** One DDIM update from sigma to sigmaNext given the (possibly corrected) eps. */
    static double[] update(double[] denoised, double[] eps, double sigmaNext, double noiseSigma, double[] noise) {
        double[] x = Vec.lin(1, denoised, Math.sqrt(sigmaNext * sigmaNext - noiseSigma * noiseSigma), eps);
        if (noiseSigma > 0) {
            Vec.addScaled(x, noiseSigma, noise);
        }
        return x;
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, sigma);
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            if (next == 0) {
                x = denoised.clone();
                continue;
            }
            double[] eps = Vec.derivative(x, denoised, sigma);
            double ns = noiseSigma(sigma, next, eta);
            x = update(denoised, eps, next, ns, ns > 0 ? noise.next(sigma, next) : null);
        }
        return x;
    }
}
