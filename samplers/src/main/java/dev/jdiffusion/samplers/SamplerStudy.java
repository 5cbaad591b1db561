package dev.jdiffusion.samplers;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Samplers measured on data whose denoiser is known exactly: every element is Gaussian,
 * x0 ~ N(mu_i, s²), so D(x, σ) = (s²x + σ²mu)/(s² + σ²) and the probability-flow ODE has the
 * closed-form solution x(σ) = mu + (x(σ₀) − mu)·√(s² + σ²)/√(s² + σ₀²). A deterministic sampler
 * is scored by its largest deviation from that solution at the schedule's smallest nonzero sigma
 * (the schedule is run without its final 0: the last step into 0 does not shrink as steps are added,
 * and would hide every method's order behind its own error); a stochastic one (its result depends on
 * the noise) by how far the variance of its samples at the end of the full schedule is from s² (its
 * sampling error is about √(2/n) = 2 %). For deterministic samplers the slope of the error between
 * the last two step counts is the measured order.
 */
public final class SamplerStudy {
    /** The data's standard deviation. */
    public static final double DATA_STD = 0.5;
    private static final int ELEMENTS = 4096;

    /** How a sampler is scored. */
    public enum Metric {
        /** Largest |x − exact ODE solution| at the end. */
        ODE_ERROR,
        /** |sample variance / s² − 1|. */
        VARIANCE_ERROR
    }

    /** One sampler's errors at each step count, and the slope between the last two. */
    public record Row(String sampler, Metric metric, int[] steps, double[] errors) {
        /**
         * log(e₁/e₂)/log(n₂/n₁) for the last two step counts; NaN for a stochastic sampler or when an
         * error is 0 or not finite.
         */
        public double order() {
            int k = steps.length - 1;
            if (metric != Metric.ODE_ERROR || k < 1 || !(errors[k] > 0) || !(errors[k - 1] > 0) || Double.isInfinite(errors[k - 1])) {
                return Double.NaN;
            }
            return Math.log(errors[k - 1] / errors[k]) / Math.log((double) steps[k] / steps[k - 1]);
        }
    }

    private SamplerStudy() {
    }

    /**
     * Every named sampler (A1111 and ComfyUI names; the same sampler under several names once) on
     * the named schedule of the SD 1.x model at each step count.
     */
    public static List<Row> run(List<String> samplerNames, String schedule, int[] steps, long seed) {
        if (steps.length == 0) {
            throw new IllegalArgumentException("no step counts given");
        }
        for (int n : steps) {
            if (n < 2) {
                throw new IllegalArgumentException("step counts must be at least 2, got " + n);
            }
        }
        int[] sorted = steps.clone();
        Arrays.sort(sorted);
        DiscreteSchedule model = DiscreteSchedule.stableDiffusion();
        Map<Sampler, String> unique = new LinkedHashMap<>();
        Map<Sampler, SamplerNames.Resolved> resolved = new LinkedHashMap<>();
        for (String name : samplerNames) {
            SamplerNames.Resolved r = SamplerNames.resolve(name);
            if (!unique.containsKey(r.sampler())) {
                unique.put(r.sampler(), r.name());
                resolved.put(r.sampler(), r);
            }
        }
        List<Row> rows = new ArrayList<>();
        for (Map.Entry<Sampler, String> e : unique.entrySet()) {
            SamplerNames.Resolved r = resolved.get(e.getKey());
            String sched = r.schedule() != null ? r.schedule() : schedule;
            // the most steps: Restart, for one, only restarts (and draws noise) from 20 steps on
            boolean stochastic = isStochastic(e.getKey(), withoutFinalZero(sigmas(sched, model, sorted[sorted.length - 1], r)),
                    seed);
            double[] errors = new double[sorted.length];
            for (int i = 0; i < sorted.length; i++) {
                double[] sigmas = sigmas(sched, model, sorted[i], r);
                errors[i] = stochastic ? varianceError(e.getKey(), sigmas, seed)
                        : odeError(e.getKey(), withoutFinalZero(sigmas), seed);
            }
            rows.add(new Row(e.getValue(), stochastic ? Metric.VARIANCE_ERROR : Metric.ODE_ERROR, sorted, errors));
        }
        return rows;
    }

    private static double[] sigmas(String schedule, DiscreteSchedule model, int steps, SamplerNames.Resolved r) {
        return ScheduleNames.sigmas(schedule, model, steps, r.discardPenultimateSigma());
    }

    private static double[] withoutFinalZero(double[] sigmas) {
        return sigmas[sigmas.length - 1] == 0 ? Arrays.copyOf(sigmas, sigmas.length - 1) : sigmas;
    }

    /** The standard error of the variance metric for exact samples: sqrt(2/(n − 1)). */
    public static double varianceSamplingError() {
        return Math.sqrt(2.0 / (ELEMENTS - 1));
    }

    /** Every sampler this library knows, by name. */
    public static List<String> allSamplers() {
        return SamplerNames.names();
    }

    private static double[] mu(int n) {
        double[] mu = new double[n];
        for (int i = 0; i < n; i++) {
            mu[i] = 0.8 * Math.sin(1.7 * i);
        }
        return mu;
    }

    private static double[] start(double[] mu, double sigma, long seed) {
        double[] z = SeededNoise.of(SeededNoise.Generator.OWN, seed, mu.length).next();
        double[] x = new double[mu.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = mu[i] + z[i] * Math.sqrt(sigma * sigma + DATA_STD * DATA_STD);
        }
        return x;
    }

    private static boolean isStochastic(Sampler s, double[] sigmas, long seed) {
        double[] mu = mu(64);
        ToyDenoiser model = new ToyDenoiser(mu);
        double[] x = start(mu, sigmas[0], seed);
        double[] a = s.sample(model, x, sigmas, SeededNoise.of(SeededNoise.Generator.OWN, seed + 1, mu.length),
                StepListener.NONE);
        double[] b = s.sample(model, x, sigmas, SeededNoise.of(SeededNoise.Generator.OWN, seed + 2, mu.length),
                StepListener.NONE);
        return !Arrays.equals(a, b);
    }

    private static double odeError(Sampler s, double[] sigmas, long seed) {
        double[] mu = mu(ELEMENTS);
        double[] x = start(mu, sigmas[0], seed);
        double[] got = s.sample(new ToyDenoiser(mu), x, sigmas, SeededNoise.of(SeededNoise.Generator.OWN, seed + 1,
                mu.length), StepListener.NONE);
        double end = sigmas[sigmas.length - 1];
        double factor = Math.sqrt(DATA_STD * DATA_STD + end * end)
                / Math.sqrt(DATA_STD * DATA_STD + sigmas[0] * sigmas[0]);
        double err = 0;
        for (int i = 0; i < mu.length; i++) {
            double exact = mu[i] + (x[i] - mu[i]) * factor;
            err = Math.max(err, Math.abs(got[i] - exact));
        }
        return err;
    }

    private static double varianceError(Sampler s, double[] sigmas, long seed) {
        double[] mu = new double[ELEMENTS];
        double[] x = start(mu, sigmas[0], seed);
        double[] got = s.sample(new ToyDenoiser(mu), x, sigmas, SeededNoise.of(SeededNoise.Generator.OWN, seed + 1,
                mu.length), StepListener.NONE);
        double mean = Arrays.stream(got).average().orElse(Double.NaN);
        double var = Arrays.stream(got).map(v -> (v - mean) * (v - mean)).sum() / (got.length - 1);
        return Math.abs(var / (DATA_STD * DATA_STD) - 1);
    }

    /** The exact denoiser of the Gaussian data. */
    private record ToyDenoiser(double[] mu) implements Denoiser {
        @Override
        public double[] denoise(double[] x, double sigma) {
            double ss = DATA_STD * DATA_STD;
            double[] d = new double[x.length];
            for (int i = 0; i < d.length; i++) {
                d[i] = (ss * x[i] + sigma * sigma * mu[i]) / (ss + sigma * sigma);
            }
            return d;
        }
    }
}
