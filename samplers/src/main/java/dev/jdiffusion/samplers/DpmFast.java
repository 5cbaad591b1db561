package dev.jdiffusion.samplers;

import static dev.jdiffusion.samplers.Sampling.sigma;
import static dev.jdiffusion.samplers.Sampling.t;

/**
 * DPM-Solver "fast" (Lu et al. 2022, §3.4): a fixed budget of model evaluations spread over steps
 * of order 3 (then 2 and 1) uniform in t = −log σ, from sigmaMax to sigmaMin (k-diffusion
 * {@code sample_dpm_fast}). As a {@link Sampler} it runs from the schedule's first sigma to its last
 * nonzero one with as many evaluations as the schedule has steps, as ComfyUI does; the result is at
 * sigmaMin (no final denoising).
 */
public record DpmFast(double eta, double sNoise) implements Sampler {
    public DpmFast() {
        this(0, 1);
    }

    public DpmFast {
        Ancestral.check(eta, sNoise);
    }

    @Override
    public double[] sample(Denoiser model, double[] x, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        return sample(model, x, Sampling.lastNonzero(sigmas), sigmas[0], sigmas.length - 1, noise, listener);
    }

    /** The reference's own call: {@code nfe} model evaluations from sigmaMax down to sigmaMin. */
    public double[] sample(Denoiser model, double[] x0, double sigmaMin, double sigmaMax, int nfe, NoiseSource noise,
                           StepListener listener) {
        if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || Double.isInfinite(sigmaMax)) {
            throw new IllegalArgumentException("DPM fast needs 0 < sigma_min < sigma_max, got " + sigmaMin + ", " + sigmaMax);
        }
        if (nfe < 1) {
            throw new IllegalArgumentException("DPM fast needs at least 1 model evaluation, got " + nfe);
        }
        double tStart = t(sigmaMax);
        double tEnd = t(sigmaMin);
        int m = nfe / 3 + 1;
        double[] ts = Schedules.linspace(tStart, tEnd, m + 1);
        // orders [3, …, 3, 2, 1] when nfe is a multiple of 3, else [3, …, 3, nfe % 3]
        int[] orders = new int[m];
        java.util.Arrays.fill(orders, 3);
        if (nfe % 3 == 0) {
            orders[m - 2] = 2;
            orders[m - 1] = 1;
        } else {
            orders[m - 1] = nfe % 3;
        }
        DpmSolver solver = new DpmSolver(model);
        double[] x = x0.clone();
        for (int i = 0; i < orders.length; i++) {
            solver.newStep();
            double t = ts[i];
            double[] an = DpmSolver.ancestral(t, ts[i + 1], tEnd, eta);
            double tNext = an[0];
            double[] denoised = solver.denoisedAtStart(x, t);
            Sampling.report(listener, new Step(i, sigma(t), sigma(t), x, denoised));
            x = switch (orders[i]) {
                case 1 -> solver.step1(x, t, tNext);
                case 2 -> solver.step2(x, t, tNext, 0.5);
                default -> solver.step3(x, t, tNext, 1.0 / 3, 2.0 / 3);
            };
            double[] z = noise.next(sigma(t), sigma(ts[i + 1]));
            Vec.addScaled(x, an[1] * sNoise, z);
        }
        return x;
    }
}
