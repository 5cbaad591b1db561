package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.t;

/** DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2, multistep 2nd order; k-diffusion {@code sample_dpmpp_2m}). */
public record DpmPp2m() implements Sampler {
    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] old = null;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, sigma);
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            double h = t(next) - t(sigma);
            if (old == null || next == 0) {
                x = Vec.lin(next / sigma, x, -Math.expm1(-h), denoised);
            } else {
                double hLast = t(sigma) - t(sigmas[i - 1]);
                double r = hLast / h;
                double[] dd = Vec.lin(1 + 1 / (2 * r), denoised, -1 / (2 * r), old);
                x = Vec.lin(next / sigma, x, -Math.expm1(-h), dd);
            }
            old = denoised;
        }
        return x;
    }
}
