package dev.jdiffusion.samplers;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import org.apache.commons.math3.analysis.integration.gauss.GaussIntegratorFactory;

/**
 * Linear multistep (Adams–Bashforth in sigma) of the given order: the coefficients are integrals of
 * the Lagrange basis polynomials through the last sigmas over the step (k-diffusion
 * {@code sample_lms}, which integrates with scipy's quad; here Gauss–Legendre quadrature, exact for
 * these polynomials). ComfyUI steps into sigma 0 with {@code x = denoised} ({@code finalDenoised}).
 */
public record Lms(int order, boolean finalDenoised) implements Sampler {
    private static final GaussIntegratorFactory GAUSS = new GaussIntegratorFactory();

    public Lms() {
        this(4, false);
    }

    public Lms {
        if (order < 1 || order > 8) {
            throw new IllegalArgumentException("LMS order must be 1..8, got " + order);
        }
    }

    /** ∫ from sigmas[i] to sigmas[i+1] of the j-th Lagrange basis polynomial through sigmas[i], sigmas[i-1], … */
    static double coefficient(int order, double[] sigmas, int i, int j) {
        java.util.function.DoubleUnaryOperator basis = tau -> {
            double prod = 1;
            for (int k = 0; k < order; k++) {
                if (k != j) {
                    prod *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k]);
                }
            }
            return prod;
        };
        // n points integrate polynomials of degree 2n - 1 exactly; sigmas decrease, so the integral is negated
        double from = sigmas[i];
        double to = sigmas[i + 1];
        return from <= to ? GAUSS.legendre(order, from, to).integrate(basis::applyAsDouble)
                : -GAUSS.legendre(order, to, from).integrate(basis::applyAsDouble);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        Deque<double[]> ds = new ArrayDeque<>(); // newest first
        int steps = sigmas.length - 1;
        for (int i = 0; i < steps; i++) {
            double sigma = sigmas[i];
            double[] denoised = model.denoise(x, sigma);
            ds.addFirst(Vec.derivative(x, denoised, sigma));
            if (ds.size() > order) {
                ds.removeLast();
            }
            Sampling.report(listener, new Step(i, sigma, sigma, x, denoised));
            if (finalDenoised && sigmas[i + 1] == 0) {
                x = denoised.clone();
                continue;
            }
            int k = Math.min(i + 1, order);
            List<double[]> history = new ArrayList<>(ds);
            for (int j = 0; j < k; j++) {
                Vec.addScaled(x, coefficient(k, sigmas, i, j), history.get(j));
            }
        }
        return x;
    }
}
