package dev.jdiffusion.samplers;

/**
 * Gradient-estimation sampling (Permenter &amp; Yuan 2024; ComfyUI {@code sample_gradient_estimation}):
 * an Euler step whose direction is extrapolated from the previous one, {@code d + (γ − 1)(d − d_prev)}.
 * With {@code cfgPp} the direction is taken from the unconditional prediction and the step lands
 * on the guided one (CFG++).
 */
public record GradientEstimation(double gamma, boolean cfgPp) implements Sampler {
    public GradientEstimation() {
        this(2, false);
    }

    public GradientEstimation {
        if (!Double.isFinite(gamma)) {
            throw new IllegalArgumentException("gradient-estimation gamma must be finite, got " + gamma);
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] oldD = null;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            GuidedDenoiser.Prediction p = GuidedDenoiser.evaluate(model, x, s);
            double[] d = Vec.derivative(x, cfgPp ? p.uncond() : p.denoised(), s);
            Sampling.report(listener, new Step(i, s, s, x, p.denoised()));
            double dt = next - s;
            if (next == 0) {
                x = p.denoised().clone();
            } else {
                if (cfgPp) {
                    x = Vec.lin(1, p.denoised(), next, d);
                } else {
                    Vec.addScaled(x, dt, d);
                }
                if (i >= 1) {
                    for (int k = 0; k < x.length; k++) {
                        x[k] += (gamma - 1) * (d[k] - oldD[k]) * dt;
                    }
                }
            }
            oldD = d;
        }
        return x;
    }
}
