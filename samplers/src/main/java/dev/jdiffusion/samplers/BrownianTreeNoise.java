package dev.jdiffusion.samplers;

import java.util.SplittableRandom;

/**
 * Noise from one seeded Brownian motion W over [sigmaMin, sigmaMax], as k-diffusion's
 * {@code BrownianTreeNoiseSampler} provides for the SDE samplers: the draw for a step from sigma to
 * sigmaNext is (W(sigmaNext) − W(sigma))/√|sigmaNext − sigma|. W at any point is a fixed function of
 * the seed (a Brownian bridge refined by bisection, each node seeded from its position), so a run
 * with more steps sees the same path, cut finer: results change with the step count only as much
 * as the discretisation does. Every element of the sample has its own independent path.
 */
public final class BrownianTreeNoise implements NoiseSource {
    /** Bisection stops when an interval is this small relative to the whole; below it the bridge is sampled directly. */
    private static final double RELATIVE_TOLERANCE = 1e-6;

    private final long seed;
    private final int size;
    private final double lo;
    private final double hi;
    private final double[] wHi;

    public BrownianTreeNoise(long seed, int size, double sigmaMin, double sigmaMax) {
        if (size < 1) {
            throw new IllegalArgumentException("the sample needs at least one element, got " + size);
        }
        if (!(sigmaMin >= 0) || !(sigmaMax > sigmaMin) || Double.isInfinite(sigmaMax)) {
            throw new IllegalArgumentException("a Brownian tree needs 0 <= sigma_min < sigma_max < inf, got " + sigmaMin
                    + ", " + sigmaMax);
        }
        this.seed = seed;
        this.size = size;
        this.lo = sigmaMin;
        this.hi = sigmaMax;
        this.wHi = normals(mix(seed, 0x5eedL, Double.doubleToLongBits(hi)), Math.sqrt(hi - lo));
    }

    @Override
    public double[] next(double sigma, double sigmaNext) {
        double a = Math.min(sigma, sigmaNext);
        double b = Math.max(sigma, sigmaNext);
        if (!(a >= lo - 1e-12 * hi && b <= hi * (1 + 1e-12)) || a == b) {
            throw new IllegalArgumentException("noise asked for [" + a + ", " + b + "], outside the tree's ["
                    + lo + ", " + hi + "] or empty");
        }
        double[] wa = at(Math.max(a, lo));
        double[] wb = at(Math.min(b, hi));
        double scale = 1 / Math.sqrt(b - a);
        double sign = sigmaNext >= sigma ? 1 : -1;
        double[] z = new double[size];
        for (int i = 0; i < size; i++) {
            z[i] = sign * (wb[i] - wa[i]) * scale;
        }
        return z;
    }

    /** W(t), with W(sigmaMin) = 0. */
    double[] at(double t) {
        double a = lo;
        double b = hi;
        double[] wa = new double[size];
        double[] wb = wHi.clone();
        if (t <= lo) {
            return wa;
        }
        if (t >= hi) {
            return wb;
        }
        double tolerance = RELATIVE_TOLERANCE * (hi - lo);
        long path = 1;
        while (b - a > tolerance) {
            double m = 0.5 * (a + b);
            double[] wm = bridge(wa, wb, a, b, m, mix(seed, path, 0));
            if (t == m) {
                return wm;
            }
            if (t < m) {
                b = m;
                wb = wm;
                path = 2 * path;
            } else {
                a = m;
                wa = wm;
                path = 2 * path + 1;
            }
        }
        return bridge(wa, wb, a, b, t, mix(seed, path, Double.doubleToLongBits(t)));
    }

    /** W(m) given W(a) and W(b): mean linear in m, variance (m − a)(b − m)/(b − a). */
    private double[] bridge(double[] wa, double[] wb, double a, double b, double m, long nodeSeed) {
        double w = (m - a) / (b - a);
        double sd = Math.sqrt((m - a) * (b - m) / (b - a));
        double[] z = normals(nodeSeed, sd);
        for (int i = 0; i < size; i++) {
            z[i] += wa[i] + w * (wb[i] - wa[i]);
        }
        return z;
    }

    private double[] normals(long nodeSeed, double sd) {
        SplittableRandom r = new SplittableRandom(nodeSeed);
        double[] z = new double[size];
        for (int i = 0; i < size; i += 2) {
            double u1 = 1 - r.nextDouble();
            double u2 = r.nextDouble();
            double rad = sd * Math.sqrt(-2 * Math.log(u1));
            z[i] = rad * Math.cos(2 * Math.PI * u2);
            if (i + 1 < size) {
                z[i + 1] = rad * Math.sin(2 * Math.PI * u2);
            }
        }
        return z;
    }

    private static long mix(long a, long b, long c) {
        long h = a * 0x9E3779B97F4A7C15L;
        h ^= b + 0x632BE59BD9B4E019L + (h << 6) + (h >>> 2);
        h ^= c + 0x9E3779B97F4A7C15L + (h << 6) + (h >>> 2);
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        return h;
    }
}
