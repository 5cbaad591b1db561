package dev.jdiffusion.samplers;

/**
 * DPM-Solver-2 in Karras's form: a midpoint step, the midpoint taken in log sigma
 * (k-diffusion {@code sample_dpm_2}); the last step, to sigma 0, is Euler.
 */
public record Dpm2(Churn churn) implements Sampler {
    public Dpm2() {
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
            double next = sigmas[i + 1];
            if (next == 0) {
                Vec.addScaled(x, next - sigmaHat, d);
            } else {
                midpointStep(model, x, d, sigmaHat, next);
            }
        }
        return x;
    }

    /** The DPM-Solver-2 step from sigma to next on x in place: the derivative taken at the log-sigma midpoint. */
    static void midpointStep(Denoiser model, double[] x, double[] d, double sigma, double next) {
        double mid = Math.exp((Math.log(sigma) + Math.log(next)) / 2);
        double[] x2 = Vec.lin(1, x, mid - sigma, d);
        double[] d2 = Vec.derivative(x2, model.denoise(x2, mid), mid);
        Vec.addScaled(x, next - sigma, d2);
    }
}
