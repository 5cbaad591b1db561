package dev.jdiffusion.samplers;

import java.util.Arrays;

/**
 * A discrete schedule as ComfyUI's {@code ModelSamplingDiscrete} holds it: the sigma table and its
 * logarithm rounded to float32, sigma of a real timestep interpolated in float32, the nearest
 * timestep of a sigma, and the schedulers that read the table ({@code simple}, {@code normal},
 * {@code sgm_uniform}, {@code ddim_uniform}, {@code beta}). Every value it returns is a float32
 * value, as ComfyUI returns it.
 */
public final class ModelSampling {
    private final float[] sigmas;
    private final float[] logSigmas;

    private ModelSampling(double[] alphasCumprod) {
        sigmas = new float[alphasCumprod.length];
        logSigmas = new float[alphasCumprod.length];
        for (int t = 0; t < sigmas.length; t++) {
            double s = Math.sqrt((1 - alphasCumprod[t]) / alphasCumprod[t]);
            sigmas[t] = (float) s;
            logSigmas[t] = (float) Math.log(s);
        }
    }

    /** The table of a model's schedule (its ᾱ in float64, as ComfyUI computes them from the betas). */
    public static ModelSampling of(DiscreteSchedule schedule) {
        return new ModelSampling(schedule.alphasCumprod());
    }

    /** Stable Diffusion 1.x, 2.x and XL: 'linear' betas 0.00085..0.012 over 1000 steps. */
    public static ModelSampling stableDiffusion() {
        return of(DiscreteSchedule.stableDiffusion());
    }

    public int timesteps() {
        return sigmas.length;
    }

    /** The float32 sigma of every integer timestep. */
    public double[] sigmas() {
        double[] r = new double[sigmas.length];
        for (int t = 0; t < r.length; t++) {
            r[t] = sigmas[t];
        }
        return r;
    }

    /** The float32 log sigma of every integer timestep (the logarithm taken in float64, then rounded). */
    public double[] logSigmas() {
        double[] r = new double[logSigmas.length];
        for (int t = 0; t < r.length; t++) {
            r[t] = logSigmas[t];
        }
        return r;
    }

    public double sigmaMin() {
        return sigmas[0];
    }

    public double sigmaMax() {
        return sigmas[sigmas.length - 1];
    }

    /** sigma of a real timestep t (clamped to [0, T−1]): log sigma interpolated linearly, in float32. */
    public double sigma(double t) {
        float tf = (float) t;
        if (Float.isNaN(tf)) {
            throw new IllegalArgumentException("timestep is NaN");
        }
        tf = Math.min(Math.max(tf, 0f), sigmas.length - 1);
        int low = (int) Math.floor(tf);
        int high = (int) Math.ceil(tf);
        float w = tf - low;
        float logSigma = (1f - w) * logSigmas[low] + w * logSigmas[high];
        return (float) Math.exp(logSigma);
    }

    /** The integer timestep whose log sigma is nearest to that of sigma (the first on a tie). */
    public int timestep(double sigma) {
        float logSigma = (float) Math.log((float) sigma);
        int best = 0;
        float bestDist = Float.POSITIVE_INFINITY;
        for (int t = 0; t < logSigmas.length; t++) {
            float d = Math.abs(logSigma - logSigmas[t]);
            if (d < bestDist) {
                bestDist = d;
                best = t;
            }
        }
        return best;
    }

    /**
     * The sigma at a fraction of the way through sampling: 0 → effectively infinite (999999999.9),
     * 1 → 0, otherwise sigma((1 − p)·(T − 1)).
     */
    public double percentToSigma(double percent) {
        if (percent <= 0) {
            return 999999999.9;
        }
        if (percent >= 1) {
            return 0;
        }
        return sigma((float) ((1 - percent) * (sigmas.length - 1)));
    }

    /** ComfyUI {@code simple}: table entries every T/steps timesteps from the top, then 0. */
    public double[] simple(int steps) {
        checkSteps(steps);
        double ss = (double) sigmas.length / steps;
        double[] r = new double[steps + 1];
        for (int k = 0; k < steps; k++) {
            r[k] = sigmas[sigmas.length - 1 - (int) (k * ss)];
        }
        return r;
    }

    /**
     * ComfyUI {@code normal}: timesteps evenly spaced (float32 linspace) from that of sigma_max to
     * that of sigma_min, their interpolated sigmas, then 0. A table that reaches sigma ≈ 0 gets one
     * more point and no appended 0.
     */
    public double[] normal(int steps) {
        checkSteps(steps);
        int start = timestep(sigmaMax());
        int end = timestep(sigmaMin());
        boolean appendZero = Math.abs(sigma(end)) > 1e-5;
        int n = appendZero ? steps : steps + 1;
        return sigmasAt(Schedules.linspaceFloat32(start, end, n), n, appendZero);
    }

    /** ComfyUI {@code sgm_uniform}: as {@link #normal} over steps + 1 evenly spaced timesteps without the last. */
    public double[] sgmUniform(int steps) {
        checkSteps(steps);
        int start = timestep(sigmaMax());
        int end = timestep(sigmaMin());
        return sigmasAt(Schedules.linspaceFloat32(start, end, steps + 1), steps, true);
    }

    private double[] sigmasAt(double[] t, int n, boolean appendZero) {
        double[] r = new double[appendZero ? n + 1 : n];
        for (int k = 0; k < n; k++) {
            r[k] = sigma(t[k]);
        }
        return r;
    }

    /**
     * ComfyUI {@code ddim_uniform}: table entries 1, 1 + c, 1 + 2c, … (c = T // steps) from the
     * largest down, then 0 (no 0 when the table's entry 1 is itself ≈ 0). It starts below sigma_max.
     */
    public double[] ddimUniform(int steps) {
        checkSteps(steps);
        boolean zeroAtOne = Math.abs(sigmas[1]) <= 1e-5;
        int c = Math.max(sigmas.length / (zeroAtOne ? steps + 1 : steps), 1);
        int count = (sigmas.length - 1 + c - 1) / c;
        double[] r = new double[zeroAtOne ? count : count + 1];
        for (int i = 0; i < count; i++) {
            r[count - 1 - i] = sigmas[1 + i * c];
        }
        return r;
    }

    /**
     * ComfyUI {@code beta} (Lee et al. 2024): timesteps at the quantiles 1 − k/steps of a Beta(alpha,
     * beta) distribution, rounded (half to even) on the table, consecutive repeats dropped, then 0.
     * ComfyUI's defaults are alpha = beta = 0.6.
     */
    public double[] beta(int steps, double alpha, double beta) {
        checkSteps(steps);
        if (!(alpha > 0) || !(beta > 0) || Double.isInfinite(alpha) || Double.isInfinite(beta)) {
            throw new IllegalArgumentException("beta schedule needs alpha > 0 and beta > 0, got alpha=" + alpha
                    + " beta=" + beta);
        }
        var dist = new org.apache.commons.math3.distribution.BetaDistribution(null, alpha, beta, 1e-12);
        double[] r = new double[steps + 1];
        int n = 0;
        double last = -1;
        int top = sigmas.length - 1;
        for (int k = 0; k < steps; k++) {
            double q = 1 - (double) k / steps;
            double t = Math.rint(dist.inverseCumulativeProbability(q) * top);
            if (t != last) {
                r[n++] = sigmas[(int) t];
            }
            last = t;
        }
        return Arrays.copyOf(r, n + 1);
    }

    private static void checkSteps(int steps) {
        if (steps < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + steps);
        }
    }
}
