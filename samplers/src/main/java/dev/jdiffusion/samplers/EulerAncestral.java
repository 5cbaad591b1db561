package dev.jdiffusion.samplers;

/** Euler down to sigmaDown, then fresh noise up to the next sigma (k-diffusion {@code sample_euler_ancestral}). */
public record EulerAncestral(double eta, double sNoise) implements Sampler {
    public EulerAncestral() {
        this(1, 1);
    }

    public EulerAncestral {
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
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            Vec.addScaled(x, du[0] - sigma, Vec.derivative(x, denoised, sigma));
            if (sigmas[i + 1] > 0) {
                Vec.addScaled(x, sNoise * du[1], noise.next(sigma, sigmas[i + 1]));
            }
        }
        return x;
    }
}
