package dev.jdiffusion.samplers;

/**
 * SEEDS, stochastic exponential-derivative-free solvers (Gonzalez et al. 2023; ComfyUI
 * {@code sample_seeds_2} and {@code sample_seeds_3}), in half-log-SNR λ = −log σ: two or three
 * stages at the fractions {@code r1} (and {@code r2}) of each step, each stage injecting noise
 * that stays correlated with the previous stage's, so the whole step has the right variance.
 * eta = 0 gives the deterministic exponential integrator. The step to sigma 0 returns the estimate.
 * SEEDS-2 combines its two estimates either by averaging them at the stage fraction (ComfyUI's
 * {@code solver_type = "phi_1"}) or with the exponential integrator's φ₁/φ₂ weights
 * ({@code phi2Weights}); with a full first stage (r = 1) and φ₂ weights it is ComfyUI's exponential
 * Heun, {@code exp_heun_2_x0} (+ {@code _sde}).
 */
public record Seeds(int stages, double eta, double sNoise, double r1, double r2, boolean phi2Weights) implements Sampler {
    /** SEEDS with the stage estimates averaged (ComfyUI's {@code solver_type = "phi_1"}, its default). */
    public Seeds(int stages, double eta, double sNoise, double r1, double r2) {
        this(stages, eta, sNoise, r1, r2, false);
    }

    /**
     * Exponential Heun in data prediction (ComfyUI's {@code exp_heun_2_x0}): SEEDS-2 with eta 0 and a
     * full first stage (r = 1), the two estimates weighted by φ₁ and φ₂.
     */
    public static Seeds expHeun2X0() {
        return new Seeds(2, 0, 0, 1, Double.NaN, true);
    }

    /** Its stochastic form (ComfyUI's {@code exp_heun_2_x0_sde}: eta 1, s_noise 1). */
    public static Seeds expHeun2X0Sde() {
        return new Seeds(2, 1, 1, 1, Double.NaN, true);
    }

    /** SEEDS-2 with ComfyUI's defaults (eta 1, s_noise 1, r 1/2). */
    public static Seeds two() {
        return new Seeds(2, 1, 1, 0.5, Double.NaN);
    }

    /** SEEDS-3 with ComfyUI's defaults (eta 1, s_noise 1, r1 1/3, r2 2/3). */
    public static Seeds three() {
        return new Seeds(3, 1, 1, 1 / 3.0, 2 / 3.0);
    }

    public Seeds {
        Ancestral.check(eta, sNoise);
        if (stages != 2 && stages != 3) {
            throw new IllegalArgumentException("SEEDS has 2 or 3 stages, got " + stages);
        }
        if (phi2Weights && stages != 2) {
            throw new IllegalArgumentException("the phi_2 weighting is a SEEDS-2 option");
        }
        if (!(r1 > 0 && r1 <= 1) || stages == 3 && !(r1 < 1 && r2 > r1 && r2 < 1)) {
            throw new IllegalArgumentException("SEEDS stage fractions must satisfy 0 < r1 < r2 < 1, got r1=" + r1
                    + " r2=" + r2);
        }
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        boolean inject = eta > 0 && sNoise > 0;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] den = model.denoise(x, s);
            Sampling.report(listener, new Step(i, s, s, x, den));
            if (next == 0) {
                x = den.clone();
                continue;
            }
            double ls = Sampling.t(s);
            double lt = Sampling.t(next);
            double h = lt - ls;
            double he = h * (eta + 1);
            double l1 = ls + r1 * h;
            double s1 = Sampling.sigma(l1);
            double a1 = s1 * Math.exp(l1);
            double at = next * Math.exp(lt);
            double[] z = null;
            double[] x2 = Vec.lin(s1 / s * Math.exp(-r1 * h * eta), x, -a1 * Math.expm1(-r1 * he), den);
            if (inject) {
                z = Vec.scaled(Math.sqrt(-Math.expm1(-2 * r1 * h * eta)), noise.next(s, s1));
                Vec.addScaled(x2, s1 * sNoise, z);
            }
            double[] den2 = model.denoise(x2, s1);
            double decay = next / s * Math.exp(-h * eta);
            if (stages == 2) {
                if (phi2Weights) {
                    double b2 = phi2h(-he) / r1;
                    double b1 = Math.expm1(-he) - b2;
                    x = Vec.lin(decay, x, -at * b1, den, -at * b2, den2);
                } else {
                    double w = 1 / (2 * r1);
                    double[] dd = Vec.lin(1 - w, den, w, den2);
                    x = Vec.lin(decay, x, -at * Math.expm1(-he), dd);
                }
                if (inject) {
                    z = correlate(z, (r1 - 1) * h * eta, noise.next(s1, next));
                    Vec.addScaled(x, next * sNoise, z);
                }
                continue;
            }
            double l2 = ls + r2 * h;
            double s2 = Sampling.sigma(l2);
            double a2 = s2 * Math.exp(l2);
            double A2 = r2 / r1 * phi2h(-r2 * he);
            double A1 = Math.expm1(-r2 * he) - A2;
            double[] x3 = Vec.lin(s2 / s * Math.exp(-r2 * h * eta), x, -a2 * A1, den, -a2 * A2, den2);
            if (inject) {
                z = correlate(z, (r1 - r2) * h * eta, noise.next(s1, s2));
                Vec.addScaled(x3, s2 * sNoise, z);
            }
            double[] den3 = model.denoise(x3, s2);
            double B3 = phi2h(-he) / r2;
            double B1 = Math.expm1(-he) - B3;
            x = Vec.lin(decay, x, -at * B1, den, -at * B3, den3);
            if (inject) {
                z = correlate(z, (r2 - 1) * h * eta, noise.next(s2, next));
                Vec.addScaled(x, next * sNoise, z);
            }
        }
        return x;
    }

    /** The next stage's unit noise: the previous one decayed by e^f plus fresh noise for the rest of the variance. */
    private static double[] correlate(double[] z, double f, double[] fresh) {
        return Vec.lin(Math.exp(f), z, Math.sqrt(-Math.expm1(2 * f)), fresh);
    }

    private static double phi2h(double z) {
        return (Math.expm1(z) - z) / z;
    }
}
