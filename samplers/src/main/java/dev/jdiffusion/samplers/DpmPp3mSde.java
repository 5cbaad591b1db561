package dev.jdiffusion.samplers;

/** DPM-Solver++(3M) SDE (k-diffusion {@code sample_dpmpp_3m_sde}): third-order multistep with SDE noise. */
public record DpmPp3mSde(double eta, double sNoise) implements Sampler {
    public DpmPp3mSde() {
        this(1, 1);
    }

    public DpmPp3mSde {
        Ancestral.check(eta, sNoise);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] den1 = null;
        double[] den2 = null;
        double h1 = 0;
        double h2 = 0;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, sigma);
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            double h = 0;
            if (next == 0) {
                x = denoised.clone();
            } else {
                h = -Math.log(next) + Math.log(sigma);
                double he = h * (eta + 1);
                x = Vec.lin(Math.exp(-he), x, -Math.expm1(-he), denoised);
                double p2 = Math.expm1(-he) / he + 1;
                if (den2 != null) {
                    double r0 = h1 / h;
                    double r1 = h2 / h;
                    double p3 = p2 / he - 0.5;
                    for (int k = 0; k < x.length; k++) {
                        double d10 = (denoised[k] - den1[k]) / r0;
                        double d11 = (den1[k] - den2[k]) / r1;
                        double d1 = d10 + (d10 - d11) * r0 / (r0 + r1);
                        double d2 = (d10 - d11) / (r0 + r1);
                        x[k] += p2 * d1 - p3 * d2;
                    }
                } else if (den1 != null) {
                    double r = h1 / h;
                    for (int k = 0; k < x.length; k++) {
                        x[k] += p2 * (denoised[k] - den1[k]) / r;
                    }
                }
                if (eta > 0) {
                    Vec.addScaled(x, next * Math.sqrt(-Math.expm1(-2 * h * eta)) * sNoise, noise.next(sigma, next));
                }
            }
            den2 = den1;
            den1 = denoised;
            h2 = h1;
            h1 = h;
        }
        return x;
    }
}
