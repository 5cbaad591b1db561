package dev.jdiffusion.samplers;

/** DPM-Solver-2 down to sigmaDown, then fresh noise up to the next sigma (k-diffusion {@code sample_dpm_2_ancestral}). */
public record Dpm2Ancestral(double eta, double sNoise) implements Sampler {
    public Dpm2Ancestral() {
        this(1, 1);
    }

    public Dpm2Ancestral {
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
            double[] d = Vec.derivative(x, denoised, sigma);
            if (down == 0) {
                Vec.addScaled(x, down - sigma, d);
            } else {
                Dpm2.midpointStep(model, x, d, sigma, down);
                Vec.addScaled(x, sNoise * du[1], noise.next(sigma, sigmas[i + 1]));
            }
        }
        return x;
    }
}
