package dev.jdiffusion.samplers;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * DEIS (Zhang &amp; Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator"), the
 * tabulated multistep form of ComfyUI's {@code sample_deis}: the derivative d = (x − D)/σ of the
 * last {@code maxOrder} steps is combined with weights that integrate the Lagrange polynomial
 * through their times against the VP exponential-integrator kernel. Sigmas are mapped to VP time
 * with EDM's fixed constants (σ_min 0.002, σ_max 80, ε_s 10⁻³) and the integrals are the
 * reference's 10,000-point Riemann sums. The first step and the step to sigma 0 are Euler steps.
 */
public record Deis(int maxOrder) implements Sampler {
    /** Points of the Riemann sum over each step, as in the reference. */
    static final int QUADRATURE_POINTS = 10_000;
    private static final double EPS_S = 1e-3;
    private static final double VP_SIGMA_MIN = 0.002;
    private static final double VP_SIGMA_MAX = 80;

    public Deis() {
        this(3);
    }

    public Deis {
        if (maxOrder < 1 || maxOrder > 4) {
            throw new IllegalArgumentException("DEIS order must be 1 to 4, got " + maxOrder);
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[][] weights = coefficients(sigmas, maxOrder);
        double[] x = x0.clone();
        Deque<double[]> history = new ArrayDeque<>(); // newest first
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, s);
            Sampling.report(listener, new Step(i, s, s, x, denoised));
            double[] d = Vec.derivative(x, denoised, s);
            int order = next <= 0 ? 1 : Math.min(maxOrder, i + 1);
            if (order == 1) {
                x = Vec.addScaled(x, next - s, d);
            } else {
                Vec.addCombination(x, 1, weights[i], Ipndm.newestFirst(d, history, order));
            }
            history.addFirst(d);
            if (history.size() > maxOrder - 1) {
                history.removeLast();
            }
        }
        return x;
    }

    /**
     * The weights of every step (newest derivative first; none for first-order steps and the step to
     * 0): ∫ −½ (d log α/dτ) / sqrt(α(1 − α)) · L_j(τ) dτ over the step in VP time, L_j the Lagrange
     * basis through the times of the last min(i + 1, order) sigmas.
     */
    static double[][] coefficients(double[] sigmas, int maxOrder) {
        double betaD = 2 * (Math.log(VP_SIGMA_MIN * VP_SIGMA_MIN + 1) / EPS_S - Math.log(VP_SIGMA_MAX * VP_SIGMA_MAX + 1))
                / (EPS_S - 1);
        double beta0 = Math.log(VP_SIGMA_MAX * VP_SIGMA_MAX + 1) - 0.5 * betaD;
        double beta1 = betaD + beta0;
        double[] t = new double[sigmas.length];
        for (int i = 0; i < t.length; i++) {
            double s = sigmas[i];
            t[i] = (Math.sqrt(beta0 * beta0 + 2 * betaD * Math.log(s * s + 1)) - beta0) / betaD;
        }
        double[][] c = new double[sigmas.length - 1][];
        for (int i = 0; i < c.length; i++) {
            int order = Math.min(i + 1, maxOrder);
            if (order == 1 || sigmas[i + 1] <= 0) {
                c[i] = new double[0];
                continue;
            }
            double[] taus = Schedules.linspace(t[i], t[i + 1], QUADRATURE_POINTS);
            double dtau = (t[i + 1] - t[i]) / QUADRATURE_POINTS;
            double[] nodes = new double[order];
            for (int k = 0; k < order; k++) {
                nodes[k] = t[i - k];
            }
            double[] w = new double[order];
            for (double tau : taus) {
                double alpha = Math.exp(-0.5 * tau * tau * (beta1 - beta0) - tau * beta0);
                double dLogAlpha = -(tau * (beta1 - beta0) + beta0);
                double integrand = -0.5 * dLogAlpha / Math.sqrt(alpha * (1 - alpha));
                for (int j = 0; j < order; j++) {
                    double basis = 1;
                    for (int m = 0; m < order; m++) {
                        if (m != j) {
                            basis *= (tau - nodes[m]) / (nodes[j] - nodes[m]);
                        }
                    }
                    w[j] += integrand * basis;
                }
            }
            for (int j = 0; j < order; j++) {
                w[j] *= dtau;
            }
            c[i] = w;
        }
        return c;
    }
}
