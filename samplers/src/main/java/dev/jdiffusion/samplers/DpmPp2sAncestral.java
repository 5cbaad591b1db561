package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.sigma;
import static dev.jdiffusion.samplers.Sampling.t;

/** DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1, single-step 2nd order) with ancestral noise (k-diffusion {@code sample_dpmpp_2s_ancestral}). */
public record DpmPp2sAncestral(double eta, double sNoise) implements Sampler {
    public DpmPp2sAncestral() {
        this(1, 1);
    }

    public DpmPp2sAncestral {
        Ancestral.check(eta, sNoise);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double[] denoised = model.denoise(x, sigma);
            double[] du = Sampling.ancestralStep(sigma, sigmas[i + 1], eta);
            double down = du[0];
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            if (down == 0) {
                Vec.addScaled(x, down - sigma, Vec.derivative(x, denoised, sigma));
            } else {
                double t = t(sigma);
                double tNext = t(down);
                double h = tNext - t;
                double s = t + h / 2;
                double[] x2 = Vec.lin(sigma(s) / sigma(t), x, -Math.expm1(-h / 2), denoised);
                double[] denoised2 = model.denoise(x2, sigma(s));
                x = Vec.lin(sigma(tNext) / sigma(t), x, -Math.expm1(-h), denoised2);
            }
            if (sigmas[i + 1] > 0) {
                Vec.addScaled(x, sNoise * du[1], noise.next(sigma, sigmas[i + 1]));
            }
        }
        return x;
    }
}
