package dev.jdiffusion.samplers;

import java.util.ArrayList;
import java.util.List;

/**
 * SA-Solver (Xue et al. 2023, "SA-Solver: Stochastic Adams Solver for Fast Sampling of Diffusion
 * Models"; ComfyUI {@code sample_sa_solver} and {@code sample_sa_solver_pece}): a stochastic
 * Adams predictor–corrector in half-log-SNR λ = −log σ. Each step predicts with the last
 * {@code predictorOrder} denoised estimates and, at the next evaluation, corrects with the last
 * {@code correctorOrder} (including the new one); PECE evaluates the model again after correcting.
 * The weights integrate the Lagrange polynomial through the nodes' λ against the kernel
 * (1 + τ²)·e^{−(1 + τ²)(λ_t − λ)}. Noise of strength τ is injected only while the target sigma lies
 * in [{@code tauSigmaMin}, {@code tauSigmaMax}] (ComfyUI: the model's sigmas at 80 % and 20 % of
 * sampling, with τ = eta). A schedule that ends above 0 returns the prediction at its last sigma.
 */
public record SaSolver(int predictorOrder, int correctorOrder, double eta, double sNoise, boolean pece,
        boolean simpleOrder2, double tauSigmaMax, double tauSigmaMin) implements Sampler {

    /** ComfyUI's defaults (orders 3 and 4, eta 1, s_noise 1) with the SD model table's noise window. */
    public SaSolver(boolean pece) {
        this(3, 4, 1, 1, pece, false, ModelSampling.stableDiffusion().percentToSigma(0.2),
                ModelSampling.stableDiffusion().percentToSigma(0.8));
    }

    public SaSolver {
        if (predictorOrder < 1 || predictorOrder > 6 || correctorOrder < 0 || correctorOrder > 6) {
            throw new IllegalArgumentException("SA-Solver orders must be 1..6 (predictor) and 0..6 (corrector), got "
                    + predictorOrder + " and " + correctorOrder);
        }
        Ancestral.check(eta, sNoise);
        if (!(tauSigmaMax >= tauSigmaMin) || !(tauSigmaMin >= 0)) {
            throw new IllegalArgumentException("SA-Solver noise window must satisfy 0 <= min <= max, got ["
                    + tauSigmaMin + ", " + tauSigmaMax + "]");
        }
    }

    private double tau(double sigma) {
        return tauSigmaMax >= sigma && sigma >= tauSigmaMin ? eta : 0;
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        int n = sigmas.length - 1;
        double[] lambda = new double[sigmas.length];
        for (int i = 0; i < lambda.length; i++) {
            lambda[i] = Sampling.t(sigmas[i]);
        }
        boolean low = sigmas[n] == 0;
        int keep = Math.max(predictorOrder, correctorOrder);
        List<double[]> history = new ArrayList<>(); // oldest first
        double[] xPred = x0.clone();
        double[] x = xPred;
        double h = 0;
        double tauT = 0;
        double[] injected = null;
        for (int i = 0; i < n; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] den = model.denoise(xPred, s);
            Sampling.report(listener, new Step(i, s, s, xPred, den));
            history.add(den);
            if (history.size() > keep) {
                history.remove(0);
            }
            int po = Math.min(predictorOrder, history.size());
            int co = i == 0 || next == 0 && !pece ? 0 : Math.min(correctorOrder, history.size());
            if (low) {
                po = Math.min(po, n - 1 - i);
                co = Math.min(co, n - i);
            }
            if (co == 0) {
                x = xPred;
            } else {
                double[] b = weights(s, nodes(lambda, i, co), lambda[i - 1], lambda[i], tauT, true);
                x = combine(s / sigmas[i - 1] * Math.exp(-tauT * tauT * h), x, b, history);
                if (tauT > 0 && sNoise > 0) {
                    Vec.addScaled(x, 1, injected);
                }
                if (pece) {
                    den = model.denoise(x, s);
                    history.set(history.size() - 1, den);
                }
            }
            if (next == 0) {
                x = den.clone();
                break;
            }
            tauT = tau(next);
            double[] b = weights(next, nodes(lambda, i, po), lambda[i], lambda[i + 1], tauT, false);
            h = lambda[i + 1] - lambda[i];
            xPred = combine(next / s * Math.exp(-tauT * tauT * h), x, b, history);
            if (tauT > 0 && sNoise > 0) {
                injected = Vec.scaled(next * Math.sqrt(-Math.expm1(-2 * tauT * tauT * h)) * sNoise, noise.next(s, next));
                Vec.addScaled(xPred, 1, injected);
            }
        }
        // A schedule that ends above 0 ends on the last prediction; ComfyUI returns the corrected sample
        // of the step before, which belongs to the penultimate sigma.
        return sigmas[n] == 0 ? x : xPred;
    }

    /** λ of the last k evaluations up to step i, oldest first. */
    private static double[] nodes(double[] lambda, int i, int k) {
        double[] l = new double[k];
        System.arraycopy(lambda, i - k + 1, l, 0, k);
        return l;
    }

    /** decay·x + Σ_a b_a·E[|E| − k + a], k = b.length: the weighted sum over the last k estimates. */
    private static double[] combine(double decay, double[] x, double[] b, List<double[]> history) {
        double[] r = Vec.scaled(decay, x);
        int base = history.size() - b.length;
        for (int a = 0; a < b.length; a++) {
            Vec.addScaled(r, b[a], history.get(base + a));
        }
        return r;
    }

    /**
     * The weights of the nodes for the step from λ_s to λ_t, scaled by α_t (= σ e^{λ_t}): the
     * integrals of m e^{−m(λ_t − λ)} times each Lagrange basis polynomial, m = 1 + τ². They come
     * from the power moments e_p = ∫ m e^{−m(λ_t − λ)} λ^p dλ by a transposed Vandermonde solve;
     * {@code simpleOrder2} uses the closed-form second-order weights instead.
     */
    double[] weights(double sigma, double[] nodes, double ls, double lt, double tau, boolean corrector) {
        int k = nodes.length;
        double m = 1 + tau * tau;
        double h = lt - ls;
        double at = sigma * Math.exp(lt);
        if (simpleOrder2 && k == 2) {
            double b1;
            double b2;
            if (corrector) {
                b1 = at * m * h / 2;
                b2 = at * -Math.expm1(-m * h) - b1;
            } else {
                b2 = at * m * h * h / (2 * (nodes[0] - ls));
                b1 = at * -Math.expm1(-m * h) - b2;
            }
            return new double[] {b2, b1};
        }
        double[] e = new double[k];
        double decay = Math.exp(-m * h);
        for (int p = 0; p < k; p++) {
            double sum = 0;
            double factorial = 1; // p!/q!
            for (int q = p; q >= 0; q--) {
                double sign = (p - q) % 2 == 0 ? 1 : -1;
                sum += sign * factorial * Math.pow(m, -(p - q)) * (Math.pow(lt, q) - Math.pow(ls, q) * decay);
                factorial *= q;
            }
            e[p] = sum;
        }
        double[][] vt = new double[k][k]; // vt[p][a] = nodes[a]^p
        for (int p = 0; p < k; p++) {
            for (int a = 0; a < k; a++) {
                vt[p][a] = Math.pow(nodes[a], p);
            }
        }
        double[] w = solve(vt, e);
        for (int a = 0; a < k; a++) {
            w[a] *= at;
        }
        return w;
    }

    /** Solves A w = b by Gaussian elimination with partial pivoting (A is at most 6 × 6). */
    static double[] solve(double[][] a, double[] b) {
        int k = b.length;
        double[][] m = new double[k][];
        for (int r = 0; r < k; r++) {
            m[r] = java.util.Arrays.copyOf(a[r], k + 1);
            m[r][k] = b[r];
        }
        for (int col = 0; col < k; col++) {
            int pivot = col;
            for (int r = col + 1; r < k; r++) {
                if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) {
                    pivot = r;
                }
            }
            double[] t = m[col];
            m[col] = m[pivot];
            m[pivot] = t;
            for (int r = col + 1; r < k; r++) {
                double f = m[r][col] / m[col][col];
                for (int c = col; c <= k; c++) {
                    m[r][c] -= f * m[col][c];
                }
            }
        }
        double[] w = new double[k];
        for (int r = k - 1; r >= 0; r--) {
            double sum = m[r][k];
            for (int c = r + 1; c < k; c++) {
                sum -= m[r][c] * w[c];
            }
            w[r] = sum / m[r][r];
        }
        return w;
    }
}
