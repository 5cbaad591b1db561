package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.sigma;
import static dev.jdiffusion.samplers.Sampling.t;

/**
 * DPM-Solver++ (stochastic, single-step 2nd order with intermediate point at ratio r; k-diffusion
 * {@code sample_dpmpp_sde}). Draws noise twice per step; the reference draws it from a Brownian tree.
 */
public record DpmPpSde(double eta, double sNoise, double r) implements Sampler {
    public DpmPpSde() {
        this(1, 1, 0.5);
    }

    public DpmPpSde {
        Ancestral.check(eta, sNoise);
        if (!(r > 0 && r < 1)) {
            throw new IllegalArgumentException("r must be in (0, 1), got " + r);
        }
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
                Vec.addScaled(x, next - sigma, Vec.derivative(x, denoised, sigma));
                continue;
            }
            double t = t(sigma);
            double tNext = t(next);
            double h = tNext - t;
            double s = t + h * r;
            double fac = 1 / (2 * r);
            // step 1: to the intermediate point
            double[] du = Sampling.ancestralStep(sigma(t), sigma(s), eta);
            double sDown = t(du[0]);
            double[] x2 = Vec.lin(sigma(sDown) / sigma(t), x, -Math.expm1(t - sDown), denoised);
            Vec.addScaled(x2, sNoise * du[1], noise.next(sigma(t), sigma(s)));
            double[] denoised2 = model.denoise(x2, sigma(s));
            // step 2: the full step with the blended estimate
            du = Sampling.ancestralStep(sigma(t), sigma(tNext), eta);
            double tDown = t(du[0]);
            double[] dd = Vec.lin(1 - fac, denoised, fac, denoised2);
            x = Vec.lin(sigma(tDown) / sigma(t), x, -Math.expm1(t - tDown), dd);
            Vec.addScaled(x, sNoise * du[1], noise.next(sigma(t), sigma(tNext)));
        }
        return x;
    }
}
