package dev.jdiffusion.samplers;

/** Heun's second-order method (Karras et al. 2022, Algorithm 2); the last step, to sigma 0, is Euler. */
public record Heun(Churn churn) implements Sampler {
    public Heun() {
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
            double dt = next - sigmaHat;
            if (next == 0) {
                Vec.addScaled(x, dt, d);
            } else {
                double[] x2 = Vec.lin(1, x, dt, d);
                double[] d2 = Vec.derivative(x2, model.denoise(x2, next), next);
                for (int k = 0; k < x.length; k++) {
                    x[k] += (d[k] + d2[k]) / 2 * dt;
                }
            }
        }
        return x;
    }
}
