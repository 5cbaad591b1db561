package dev.jdiffusion.samplers;

import java.util.ArrayList;
import java.util.List;

/**
 * Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative Processes"; A1111's
 * "Restart"): Heun's method on the ODE, interrupted by restarts that add noise to jump back up to a
 * higher sigma and integrate down again, so errors accumulated so far are contracted by the noise.
 *
 * <p>With {@code chooseIntervals} ({@link #automatic()}) it follows A1111: from 20 steps on, the schedule is rebuilt as a
 * Karras schedule between the given ends with fewer main steps, and one restart interval (9 + 1
 * sigmas, once; from 36 steps on steps/4 + 1 sigmas, twice) runs from sigma 2 back down to sigma
 * 0.1; below 20 steps it is plain Heun. Each ODE step is Heun's (Euler into sigma 0) and reports its
 * estimate; the noise of a restart has standard deviation sqrt(σ_high² − σ_low²) · sNoise.
 */
public record Restart(double sNoise, List<Interval> restarts, boolean chooseIntervals) implements Sampler {
    /**
     * A restart interval: when sampling reaches the schedule's sigma nearest {@code sigmaMin}, jump
     * back to its sigma nearest {@code sigmaMax} and integrate down again in {@code steps} − 1 Karras
     * steps, {@code times} times.
     */
    public record Interval(double sigmaMin, int steps, int times, double sigmaMax) {
        public Interval {
            if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || Double.isInfinite(sigmaMax)) {
                throw new IllegalArgumentException("a restart interval needs 0 < sigma_min < sigma_max, got "
                        + sigmaMin + ", " + sigmaMax);
            }
            if (steps < 2 || times < 0) {
                throw new IllegalArgumentException("a restart interval needs at least 2 sigmas and 0 or more times, got "
                        + steps + " and " + times);
            }
        }
    }

    public Restart {
        Ancestral.check(0, sNoise);
        restarts = List.copyOf(restarts);
    }

    /** A1111's Restart: s_noise 1 and the restart intervals chosen from the step count. */
    public static Restart automatic() {
        return new Restart(1, List.of(), true);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] s = sigmas;
        List<Interval> intervals = restarts;
        int steps = sigmas.length - 1;
        if (chooseIntervals && steps >= 20) {
            int restartSteps = steps >= 36 ? steps / 4 : 9;
            int times = steps >= 36 ? 2 : 1;
            s = Schedules.karras(steps - restartSteps * times, sigmas[sigmas.length - 2], sigmas[0], 7);
            intervals = List.of(new Interval(0.1, restartSteps + 1, times, 2));
        }
        List<double[]> plan = plan(s, intervals);
        double[] x = x0.clone();
        double last = Double.NaN;
        for (int k = 0; k < plan.size(); k++) {
            double from = plan.get(k)[0];
            double to = plan.get(k)[1];
            if (!Double.isNaN(last) && last < from) {
                Vec.addScaled(x, sNoise * Math.sqrt(from * from - last * last), noise.next(last, from));
            }
            x = heunStep(model, x, from, to, k, listener);
            last = to;
        }
        return x;
    }

    /** The (from, to) pairs: the schedule's steps with the restart intervals spliced in after their lower end. */
    static List<double[]> plan(double[] s, List<Interval> intervals) {
        int[] at = new int[intervals.size()];
        for (int j = 0; j < at.length; j++) {
            at[j] = nearest(s, intervals.get(j).sigmaMin());
        }
        List<double[]> plan = new ArrayList<>();
        for (int i = 0; i + 1 < s.length; i++) {
            plan.add(new double[] {s[i], s[i + 1]});
            for (int j = 0; j < at.length; j++) {
                if (at[j] != i + 1) {
                    continue;
                }
                Interval r = intervals.get(j);
                int maxIdx = nearest(s, r.sigmaMax());
                if (maxIdx >= i + 1) {
                    continue;
                }
                double[] k = Schedules.karras(r.steps(), s[i + 1], s[maxIdx], 7);
                for (int t = 0; t < r.times(); t++) {
                    for (int m = 0; m + 2 < k.length; m++) {
                        plan.add(new double[] {k[m], k[m + 1]});
                    }
                }
            }
        }
        return plan;
    }

    /** The index of the schedule entry nearest to sigma (the first on a tie). */
    private static int nearest(double[] s, double sigma) {
        int best = 0;
        for (int i = 1; i < s.length; i++) {
            if (Math.abs(s[i] - sigma) < Math.abs(s[best] - sigma)) {
                best = i;
            }
        }
        return best;
    }

    private static double[] heunStep(Denoiser model, double[] x, double from, double to, int index,
                                     StepListener listener) {
        double[] den = model.denoise(x, from);
        double[] d = Vec.derivative(x, den, from);
        Sampling.report(listener, new Step(index, to, from, x, den));
        double dt = to - from;
        if (to == 0) {
            return Vec.lin(1, x, dt, d);
        }
        double[] x2 = Vec.lin(1, x, dt, d);
        double[] d2 = Vec.derivative(x2, model.denoise(x2, to), to);
        double[] r = x.clone();
        for (int i = 0; i < r.length; i++) {
            r[i] += (d[i] + d2[i]) / 2 * dt;
        }
        return r;
    }
}
