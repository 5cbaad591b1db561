package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.sigma;
import static dev.jdiffusion.samplers.Sampling.t;

/**
 * DPM-Solver (Lu et al. 2022) in time t = −log σ with noise prediction eps = (x − D(x, σ))/σ:
 * the first-, second- and third-order single steps (paper, Algorithms 1 and 4) that
 * {@link DpmFast} and {@link DpmAdaptive} are built from. Model evaluations within one step are
 * cached by their role (eps at t, at r1, at r2), as the reference does.
 */
final class DpmSolver {
    private final Denoiser model;
    private double[][] cache = new double[3][];

    DpmSolver(Denoiser model) {
        this.model = model;
    }

    /** Starts a new step: forgets the cached evaluations. */
    void newStep() {
        cache = new double[3][];
    }

    /** eps at time t, evaluated once per step and role (0: the step's start, 1: r1, 2: r2). */
    double[] eps(int role, double[] x, double t) {
        if (cache[role] == null) {
            double sigma = sigma(t);
            double[] denoised = model.denoise(x, sigma);
            cache[role] = Vec.derivative(x, denoised, sigma);
        }
        return cache[role];
    }

    double[] denoisedAtStart(double[] x, double t) {
        double[] e = eps(0, x, t);
        return Vec.lin(1, x, -sigma(t), e);
    }

    double[] step1(double[] x, double t, double tNext) {
        double h = tNext - t;
        return Vec.lin(1, x, -sigma(tNext) * Math.expm1(h), eps(0, x, t));
    }

    double[] step2(double[] x, double t, double tNext, double r1) {
        double h = tNext - t;
        double[] e = eps(0, x, t);
        double s1 = t + r1 * h;
        double[] u1 = Vec.lin(1, x, -sigma(s1) * Math.expm1(r1 * h), e);
        double[] e1 = eps(1, u1, s1);
        double a = -sigma(tNext) * Math.expm1(h);
        double b = -sigma(tNext) / (2 * r1) * Math.expm1(h);
        return Vec.lin(1, x, a - b, e, b, e1);
    }

    double[] step3(double[] x, double t, double tNext, double r1, double r2) {
        double h = tNext - t;
        double[] e = eps(0, x, t);
        double s1 = t + r1 * h;
        double s2 = t + r2 * h;
        double[] u1 = Vec.lin(1, x, -sigma(s1) * Math.expm1(r1 * h), e);
        double[] e1 = eps(1, u1, s1);
        double c = -sigma(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
        double[] u2 = Vec.lin(1, x, -sigma(s2) * Math.expm1(r2 * h) - c, e, c, e1);
        double[] e2 = eps(2, u2, s2);
        double a = -sigma(tNext) * Math.expm1(h);
        double b = -sigma(tNext) / r2 * (Math.expm1(h) / h - 1);
        return Vec.lin(1, x, a - b, e, b, e2);
    }

    /** The eta handling of DPM fast/adaptive: where to step to (tNext_) and how much noise to add back (su). */
    static double[] ancestral(double t, double tNext, double tEnd, double eta) {
        if (eta == 0) {
            return new double[] {tNext, 0};
        }
        double[] du = Sampling.ancestralStep(sigma(t), sigma(tNext), eta);
        double to = Math.min(tEnd, t(du[0]));
        double su = Math.sqrt(sigma(tNext) * sigma(tNext) - sigma(to) * sigma(to));
        return new double[] {to, su};
    }
}
