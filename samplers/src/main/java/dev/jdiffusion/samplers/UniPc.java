package dev.jdiffusion.samplers;

import java.util.ArrayList;
import java.util.List;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.ArrayRealVector;
import org.apache.commons.math3.linear.LUDecomposition;
import org.apache.commons.math3.linear.RealMatrix;

/**
 * UniPC (Zhao et al. 2023): a multistep predictor (UniP) and corrector (UniC) on the data
 * prediction, in half-log-SNR λ = −log σ. Variants "bh1" (B(h) = h), "bh2" (B(h) = eᵸ − 1) and
 * "vary_coeff". The corrector reuses the model evaluation of the next step, so it costs nothing;
 * it is skipped on the last step. Written on the denoiser in k-diffusion's scaling, where the
 * reference's factors α_t cancel.
 */
public record UniPc(int order, Variant variant, boolean lowerOrderFinal) implements Sampler {
    public enum Variant { BH1, BH2, VARY_COEFF }

    /** The reference's defaults (order 3, bh1, lower order at the end). */
    public UniPc() {
        this(3, Variant.BH1, true);
    }

    public UniPc {
        if (order < 1 || order > 3) {
            throw new IllegalArgumentException("UniPC order must be 1, 2 or 3, got " + order);
        }
        if (variant == null) {
            throw new IllegalArgumentException("UniPC variant must be bh1, bh2 or vary_coeff");
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        int steps = sigmas.length - 1;
        if (steps < order) {
            throw new IllegalArgumentException("UniPC of order " + order + " needs at least " + order + " steps, got "
                    + steps);
        }
        if (sigmas[steps] == 0) {
            throw new IllegalArgumentException("UniPC works in log sigma and cannot step to sigma 0; end the schedule "
                    + "at the model's smallest sigma");
        }
        double[] x = x0.clone();
        List<double[]> models = new ArrayList<>();
        List<Double> prevSigmas = new ArrayList<>();
        models.add(model.denoise(x, sigmas[0]));
        prevSigmas.add(sigmas[0]);
        for (int step = 1; step <= steps; step++) {
            int stepOrder = step < order ? step : lowerOrderFinal ? Math.min(order, steps + 1 - step) : order;
            boolean corrector = step < steps;
            Sampling.report(listener, new Step(step - 1, sigmas[step - 1], sigmas[step - 1], x,
                    models.get(models.size() - 1)));
            double[][] result = update(model, x, models, prevSigmas, sigmas[step], stepOrder, corrector);
            x = result[0];
            if (step < order) {
                models.add(result[1] != null ? result[1] : model.denoise(x, sigmas[step]));
                prevSigmas.add(sigmas[step]);
                continue;
            }
            models.remove(0);
            prevSigmas.remove(0);
            prevSigmas.add(sigmas[step]);
            // the final model value is not needed
            models.add(step < steps ? (result[1] != null ? result[1] : model.denoise(x, sigmas[step])) : null);
        }
        return x;
    }

    /**
     * ComfyUI's {@code uni_pc} ({@link Variant#BH1}) and {@code uni_pc_bh2} ({@link Variant#BH2}): UniPC
     * on the sigmas as given, of order min(3, steps − 1), where a final sigma of 0 is replaced by
     * 0.001 (UniPC cannot step to λ = ∞), so the result keeps that little noise, as ComfyUI's does.
     * ComfyUI also drops the penultimate sigma of its schedule for these samplers.
     */
    public record ComfyUi(Variant variant) implements Sampler {
        /** Where ComfyUI ends a schedule that ends at 0. */
        public static final double FINAL_SIGMA = 0.001;

        public ComfyUi {
            if (variant != Variant.BH1 && variant != Variant.BH2) {
                throw new IllegalArgumentException("ComfyUI's UniPC is bh1 or bh2, not " + variant);
            }
        }

        @Override
        public double[] sample(Denoiser model, double[] x, double[] sigmas, NoiseSource noise, StepListener listener) {
            Sampling.requireSchedule(sigmas);
            int steps = sigmas.length - 1;
            if (steps < 2) {
                throw new IllegalArgumentException("ComfyUI's UniPC needs at least 2 steps, got " + steps);
            }
            double[] s = sigmas.clone();
            if (s[steps] == 0) {
                s[steps] = FINAL_SIGMA;
            }
            return new UniPc(Math.min(3, steps - 1), variant, true).sample(model, x, s, noise, listener);
        }
    }

    /** One predictor(-corrector) step to sigma t; returns {x_t, model at x_t or null}. */
    private double[][] update(Denoiser model, double[] x, List<double[]> models, List<Double> sigmas, double t, int order,
                              boolean useCorrector) {
        int last = models.size() - 1;
        double sPrev0 = sigmas.get(last);
        double lambdaPrev0 = -Math.log(sPrev0);
        double h = -Math.log(t) - lambdaPrev0;
        double[] m0 = models.get(last);
        double[] rks = new double[order];
        List<double[]> d1s = new ArrayList<>();
        for (int i = 1; i < order; i++) {
            double lambdaI = -Math.log(sigmas.get(last - i));
            double rk = (lambdaI - lambdaPrev0) / h;
            rks[i - 1] = rk;
            double[] mi = models.get(last - i);
            double[] d = new double[x.length];
            for (int k = 0; k < d.length; k++) {
                d[k] = (mi[k] - m0[k]) / rk;
            }
            d1s.add(d);
        }
        rks[order - 1] = 1;
        double hh = -h;
        double hPhi1 = Math.expm1(hh);
        double[] xBase = Vec.lin(t / sPrev0, x, -hPhi1, m0);
        return variant == Variant.VARY_COEFF
                ? varyCoeff(model, xBase, m0, d1s, rks, hh, hPhi1, t, useCorrector)
                : bh(model, xBase, m0, d1s, rks, hh, hPhi1, t, useCorrector);
    }

    private double[][] bh(Denoiser model, double[] xBase, double[] m0, List<double[]> d1s, double[] rks, double hh,
                          double hPhi1, double t, boolean useCorrector) {
        int order = rks.length;
        int nd = d1s.size();
        double bH = variant == Variant.BH1 ? hh : Math.expm1(hh);
        double hPhiK = hPhi1 / hh - 1;
        double factorial = 1;
        double[][] r = new double[order][order];
        double[] b = new double[order];
        for (int i = 1; i <= order; i++) {
            for (int k = 0; k < order; k++) {
                r[i - 1][k] = Math.pow(rks[k], i - 1);
            }
            b[i - 1] = hPhiK * factorial / bH;
            factorial *= i + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }
        double[] xt = xBase.clone();
        if (nd > 0) {
            double[] rhosP = order == 2 ? new double[] {0.5} : solve(r, b, nd);
            Vec.addScaled(xt, -bH, combine(d1s, rhosP, nd));
        }
        if (!useCorrector) {
            return new double[][] {xt, null};
        }
        double[] rhosC = order == 1 ? new double[] {0.5} : solve(r, b, order);
        double[] mt = model.denoise(xt, t);
        double[] corr = nd > 0 ? combine(d1s, rhosC, nd) : new double[xt.length];
        double last = rhosC[rhosC.length - 1];
        double[] out = xBase.clone();
        for (int k = 0; k < out.length; k++) {
            out[k] -= bH * (corr[k] + last * (mt[k] - m0[k]));
        }
        return new double[][] {out, mt};
    }

    private static double[][] varyCoeff(Denoiser model, double[] xBase, double[] m0, List<double[]> d1s, double[] rks,
                                        double hh, double hPhi1, double t, boolean useCorrector) {
        int kk = rks.length;
        double[][] c = new double[kk][kk];
        double[] col = new double[kk];
        java.util.Arrays.fill(col, 1);
        for (int k = 1; k <= kk; k++) {
            for (int i = 0; i < kk; i++) {
                c[i][k - 1] = col[i];
                col[i] = col[i] * rks[i] / (k + 1);
            }
        }
        double[] hPhiKs = new double[kk + 1];
        double factorial = 1;
        double hPhiK = hPhi1;
        for (int k = 1; k <= kk + 1; k++) {
            hPhiKs[k - 1] = hPhiK;
            hPhiK = hPhiK / hh - 1 / factorial;
            factorial *= k + 1;
        }
        double[] xt = xBase.clone();
        if (!d1s.isEmpty()) {
            double[][] ap = inverse(c, kk - 1);
            for (int k = 0; k < kk - 1; k++) {
                Vec.addScaled(xt, -hPhiKs[k + 1], combine(d1s, ap[k], kk - 1));
            }
        }
        if (!useCorrector) {
            return new double[][] {xt, null};
        }
        double[] mt = model.denoise(xt, t);
        double[][] ac = inverse(c, kk);
        double[] out = xBase.clone();
        int k = 0;
        for (k = 0; k < kk - 1; k++) {
            Vec.addScaled(out, -hPhiKs[k + 1], combine(d1s, ac[k], kk - 1));
        }
        // the reference uses the row of the loop's last k (0 when the loop is empty)
        int row = Math.max(0, k - 1);
        double coef = hPhiKs[kk] * ac[row][kk - 1];
        for (int i = 0; i < out.length; i++) {
            out[i] -= coef * (mt[i] - m0[i]);
        }
        return new double[][] {out, mt};
    }

    /** How the reference spaces its time grid: uniform in VP time, uniform in √t, or uniform in log-SNR. */
    public enum SkipType { TIME_UNIFORM, TIME_QUADRATIC, LOG_SNR }

    /**
     * The sigmas that A1111's UniPC steps through: a grid of {@code steps + 1} continuous VP times
     * from 1 down to 1/T (the model's discrete schedule read as a piecewise-linear log ᾱ through
     * ((i + 1)/T, ½ log ᾱᵢ)), converted to sigmas. It ends at the smallest training sigma, not 0.
     */
    public static double[] a1111Sigmas(DiscreteSchedule schedule, int steps, SkipType skip) {
        VpTime vp = new VpTime(schedule.alphasCumprod());
        double[] ts = a1111Times(schedule, steps, skip);
        double[] sigmas = new double[ts.length];
        for (int i = 0; i < ts.length; i++) {
            sigmas[i] = vp.sigma(ts[i]);
        }
        return sigmas;
    }

    /** The continuous VP times of {@link #a1111Sigmas}. */
    static double[] a1111Times(DiscreteSchedule schedule, int steps, SkipType skip) {
        if (steps < 1) {
            throw new IllegalArgumentException("UniPC needs at least 1 step, got " + steps);
        }
        VpTime vp = new VpTime(schedule.alphasCumprod());
        double tT = 1;
        double t0 = 1.0 / schedule.timesteps();
        double[] ts = switch (skip) {
            case TIME_UNIFORM -> Schedules.linspace(tT, t0, steps + 1);
            case TIME_QUADRATIC -> {
                double[] r = Schedules.linspace(Math.sqrt(tT), Math.sqrt(t0), steps + 1);
                for (int i = 0; i < r.length; i++) {
                    r[i] = r[i] * r[i];
                }
                yield r;
            }
            case LOG_SNR -> {
                double[] l = Schedules.linspace(vp.lambda(tT), vp.lambda(t0), steps + 1);
                for (int i = 0; i < l.length; i++) {
                    l[i] = vp.inverseLambda(l[i]);
                }
                yield l;
            }
        };
        return ts;
    }

    /** The discrete schedule as a function of continuous VP time t in (0, 1], as DPM-Solver and UniPC read it. */
    static final class VpTime {
        private final double[] t;
        private final double[] logAlpha;

        VpTime(double[] alphasCumprod) {
            int n = alphasCumprod.length;
            t = new double[n];
            logAlpha = new double[n];
            double[] grid = Schedules.linspace(0, 1, n + 1);
            for (int i = 0; i < n; i++) {
                t[i] = grid[i + 1];
                logAlpha[i] = 0.5 * Math.log(alphasCumprod[i]);
            }
        }

        /** Piecewise-linear interpolation through (xs, ys), xs increasing, extended linearly beyond both ends. */
        private static double interpolate(double x, double[] xs, double[] ys) {
            int n = xs.length;
            int lo;
            if (x <= xs[0]) {
                lo = 0;
            } else if (x >= xs[n - 1]) {
                lo = n - 2;
            } else {
                int i = java.util.Arrays.binarySearch(xs, x);
                lo = i >= 0 ? Math.min(i, n - 2) : -i - 2;
            }
            return ys[lo] + (x - xs[lo]) * (ys[lo + 1] - ys[lo]) / (xs[lo + 1] - xs[lo]);
        }

        double logAlpha(double time) {
            return interpolate(time, t, logAlpha);
        }

        /** k-diffusion's sigma (σ_VP/α) at VP time t. */
        double sigma(double time) {
            double la = logAlpha(time);
            return Math.sqrt(1 - Math.exp(2 * la)) / Math.exp(la);
        }

        double lambda(double time) {
            double la = logAlpha(time);
            return la - 0.5 * Math.log(1 - Math.exp(2 * la));
        }

        double inverseLambda(double lambda) {
            // log α = −½ log(1 + e^{−2λ})
            return timeOfLogAlpha(-0.5 * (Math.max(0, -2 * lambda) + Math.log1p(Math.exp(-Math.abs(-2 * lambda)))));
        }

        /** The VP time whose k-diffusion sigma is {@code sigma}. */
        double timeOfSigma(double sigma) {
            return timeOfLogAlpha(-0.5 * Math.log1p(sigma * sigma));
        }

        /** log α decreases with t, so interpolate on the reversed arrays. */
        private double timeOfLogAlpha(double la) {
            int n = t.length;
            double[] xs = new double[n];
            double[] ys = new double[n];
            for (int i = 0; i < n; i++) {
                xs[i] = logAlpha[n - 1 - i];
                ys[i] = t[n - 1 - i];
            }
            return interpolate(la, xs, ys);
        }
    }

    /** Σ_j weights[j]·d1s[j] for j < n. */
    private static double[] combine(List<double[]> d1s, double[] weights, int n) {
        double[] r = new double[d1s.get(0).length];
        for (int j = 0; j < n; j++) {
            Vec.addScaled(r, weights[j], d1s.get(j));
        }
        return r;
    }

    /** Solves the leading n×n block of a·x = b. */
    private static double[] solve(double[][] a, double[] b, int n) {
        return lu(a, n).getSolver().solve(new ArrayRealVector(java.util.Arrays.copyOf(b, n))).toArray();
    }

    /** The inverse of the leading n×n block of a. */
    private static double[][] inverse(double[][] a, int n) {
        return lu(a, n).getSolver().getInverse().getData();
    }

    private static LUDecomposition lu(double[][] a, int n) {
        RealMatrix m = new Array2DRowRealMatrix(n, n);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                m.setEntry(i, j, a[i][j]);
            }
        }
        return new LUDecomposition(m);
    }
}
