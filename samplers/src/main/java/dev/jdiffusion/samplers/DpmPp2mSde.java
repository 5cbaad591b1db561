package dev.jdiffusion.samplers;

/**
 * DPM-Solver++(2M) SDE (k-diffusion {@code sample_dpmpp_2m_sde}) with the midpoint or the Heun
 * second-order correction. The reference draws its noise from a Brownian tree.
 */
public record DpmPp2mSde(double eta, double sNoise, SolverType solverType) implements Sampler {
    /** How the second-order correction is formed. */
    public enum SolverType { MIDPOINT, HEUN }

    public DpmPp2mSde(SolverType solverType) {
        this(1, 1, solverType);
    }

    public DpmPp2mSde {
        Ancestral.check(eta, sNoise);
        if (solverType == null) {
            throw new IllegalArgumentException("solver type must be midpoint or heun");
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] old = null;
        double hLast = 0;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigma = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, sigma);
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            double h = 0;
            if (next == 0) {
                x = denoised.clone();
            } else {
                h = Math.log(sigma) - Math.log(next);
                double eh = eta * h;
                x = Vec.lin(next / sigma * Math.exp(-eh), x, -Math.expm1(-h - eh), denoised);
                if (old != null) {
                    double r = hLast / h;
                    double c = solverType == SolverType.HEUN
                            ? (-Math.expm1(-h - eh) / (-h - eh) + 1) * (1 / r)
                            : 0.5 * -Math.expm1(-h - eh) * (1 / r);
                    for (int k = 0; k < x.length; k++) {
                        x[k] += c * (denoised[k] - old[k]);
                    }
                }
                if (eta > 0) {
                    Vec.addScaled(x, next * Math.sqrt(-Math.expm1(-2 * eh)) * sNoise, noise.next(sigma, next));
                }
            }
            old = denoised;
            hLast = h;
        }
        return x;
    }
}
