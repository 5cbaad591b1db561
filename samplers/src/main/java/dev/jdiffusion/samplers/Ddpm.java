package dev.jdiffusion.samplers;

/**
 * Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) written in sigma space, as ComfyUI's
 * {@code sample_ddpm}: the posterior step between the variance-preserving states at the two
 * sigmas (ᾱ = 1/(1 + σ²)), with the posterior variance as fresh noise.
 */
public record Ddpm() implements Sampler {
    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, s);
            Sampling.report(listener, new Step(i, s, s, x, denoised));
            double alphaBar = 1 / (s * s + 1);
            double alphaBarNext = 1 / (next * next + 1);
            double alpha = alphaBar / alphaBarNext;
            double inputScale = 1 / Math.sqrt(1 + s * s);
            double epsScale = (1 - alpha) / Math.sqrt(1 - alphaBar);
            double mean = Math.sqrt(1 / alpha);
            double[] out = new double[x.length];
            for (int k = 0; k < x.length; k++) {
                double eps = (x[k] - denoised[k]) / s;
                out[k] = mean * (x[k] * inputScale - epsScale * eps);
            }
            if (next > 0) {
                double std = Math.sqrt((1 - alpha) * (1 - alphaBarNext) / (1 - alphaBar));
                Vec.addScaled(out, std, noise.next(s, next));
            }
            if (next != 0) {
                double scale = Math.sqrt(1 + next * next);
                for (int k = 0; k < out.length; k++) {
                    out[k] *= scale;
                }
            }
            x = out;
        }
        return x;
    }
}
