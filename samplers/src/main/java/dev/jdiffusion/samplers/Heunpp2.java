package dev.jdiffusion.samplers;

/**
 * Heun++ (ComfyUI {@code sample_heunpp2}): a third-order extension of Heun that averages up to three
 * derivatives along the coming sigmas, weighted by their size relative to the first sigma; the last
 * two steps fall back to Heun and Euler. Churn as in {@link Heun}.
 */
public record Heunpp2(Churn churn) implements Sampler {
    public Heunpp2() {
        this(Churn.NONE);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double sEnd = sigmas[sigmas.length - 1];
        double s0 = sigmas[0];
        for (int i = 0; i < sigmas.length - 1; i++) {
            double sigmaHat = churn.apply(x, sigmas, i, noise);
            double[] denoised = model.denoise(x, sigmaHat);
            double[] d = Vec.derivative(x, denoised, sigmaHat);
            Sampling.report(listener, new Step(i, sigmas[i], sigmaHat, x, denoised));
            double next = sigmas[i + 1];
            double dt = next - sigmaHat;
            if (next == sEnd) {
                Vec.addScaled(x, dt, d);
                continue;
            }
            double[] x2 = Vec.lin(1, x, dt, d);
            double[] d2 = Vec.derivative(x2, model.denoise(x2, next), next);
            if (sigmas[i + 2] == sEnd) {
                double w2 = next / (2 * s0);
                double w1 = 1 - w2;
                for (int k = 0; k < x.length; k++) {
                    x[k] += (w1 * d[k] + w2 * d2[k]) * dt;
                }
                continue;
            }
            double after = sigmas[i + 2];
            double[] x3 = Vec.lin(1, x2, after - next, d2);
            double[] d3 = Vec.derivative(x3, model.denoise(x3, after), after);
            double w2 = next / (3 * s0);
            double w3 = after / (3 * s0);
            double w1 = 1 - w2 - w3;
            for (int k = 0; k < x.length; k++) {
                x[k] += (w1 * d[k] + w2 * d2[k] + w3 * d3[k]) * dt;
            }
        }
        return x;
    }
}
