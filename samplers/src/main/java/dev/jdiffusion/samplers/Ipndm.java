package dev.jdiffusion.samplers;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Improved pseudo-numerical methods (iPNDM, Zhang &amp; Chen 2023; ComfyUI {@code sample_ipndm} and,
 * with {@code variableStep}, {@code sample_ipndm_v}): Adams–Bashforth on the derivative
 * {@code d = (x − D)/σ} with up to {@code maxOrder} points, warming up with lower orders. The
 * fixed-step form uses the classic coefficients; the variable-step form derives them from the actual
 * sigma spacings. The step to sigma 0 returns the model's estimate.
 */
public record Ipndm(int maxOrder, boolean variableStep) implements Sampler {
    public Ipndm() {
        this(4, false);
    }

    public Ipndm {
        if (maxOrder < 1 || maxOrder > 4) {
            throw new IllegalArgumentException("iPNDM order must be 1 to 4, got " + maxOrder);
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        Deque<double[]> history = new ArrayDeque<>(); // newest first
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] denoised = model.denoise(x, s);
            Sampling.report(listener, new Step(i, s, s, x, denoised));
            double[] d = Vec.derivative(x, denoised, s);
            int order = Math.min(maxOrder, i + 1);
            if (next == 0) {
                x = denoised.clone();
            } else {
                double[] c = variableStep ? variableCoefficients(sigmas, i, order) : fixedCoefficients(order);
                Vec.addCombination(x, next - s, c, newestFirst(d, history, order));
            }
            history.addFirst(d);
            if (history.size() > maxOrder - 1) {
                history.removeLast();
            }
        }
        return x;
    }

    /** The current derivative and the {@code order − 1} newest of the history, newest first. */
    static double[][] newestFirst(double[] d, Deque<double[]> history, int order) {
        double[][] terms = new double[order][];
        terms[0] = d;
        int j = 1;
        for (double[] past : history) {
            if (j >= order) {
                break;
            }
            terms[j++] = past;
        }
        return terms;
    }

    /** Adams–Bashforth weights for equal steps, newest derivative first. */
    static double[] fixedCoefficients(int order) {
        return switch (order) {
            case 1 -> new double[] {1};
            case 2 -> new double[] {3 / 2.0, -1 / 2.0};
            case 3 -> new double[] {23 / 12.0, -16 / 12.0, 5 / 12.0};
            default -> new double[] {55 / 24.0, -59 / 24.0, 37 / 24.0, -9 / 24.0};
        };
    }

    /** Variable-step Adams–Bashforth weights from the last sigma spacings, newest derivative first. */
    static double[] variableCoefficients(double[] sigmas, int i, int order) {
        if (order == 1) {
            return new double[] {1};
        }
        double hn = sigmas[i + 1] - sigmas[i];
        double hn1 = sigmas[i] - sigmas[i - 1];
        double c1 = (2 + hn / hn1) / 2;
        double c2 = -(hn / hn1) / 2;
        if (order == 2) {
            return new double[] {c1, c2};
        }
        double hn2 = sigmas[i - 1] - sigmas[i - 2];
        double t1 = (1 - hn / (3 * (hn + hn1)) * (hn * (hn + hn1)) / (hn1 * (hn1 + hn2))) / 2;
        if (order == 3) {
            return new double[] {c1 + t1, c2 - (1 + hn1 / hn2) * t1, t1 * hn1 / hn2};
        }
        double hn3 = sigmas[i - 2] - sigmas[i - 3];
        double q = hn1 * (hn1 + hn2) / (hn2 * (hn2 + hn3));
        double t2 = ((1 - hn / (3 * (hn + hn1))) / 2 + (1 - hn / (2 * (hn + hn1))) * hn / (6 * (hn + hn1 + hn2)))
                * (hn * (hn + hn1) * (hn + hn1 + hn2)) / (hn1 * (hn1 + hn2) * (hn1 + hn2 + hn3));
        return new double[] {
            c1 + t1 + t2,
            c2 - (1 + hn1 / hn2) * t1 - (1 + hn1 / hn2 + q) * t2,
            t1 * hn1 / hn2 + (hn1 / hn2 + q * (1 + hn2 / hn3)) * t2,
            -t2 * q * hn1 / hn2
        };
    }
}
