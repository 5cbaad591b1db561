package dev.jdiffusion.samplers;

/**
 * Continuous noise schedules (k-diffusion {@code get_sigmas_*}): n sigmas from sigmaMax down to
 * sigmaMin, then a final 0. The model's own discrete schedule is {@link DiscreteSchedule}.
 */
public final class Schedules {
    private Schedules() {
    }

    /** Karras et al. (2022), eq. 5: sigmas evenly spaced in sigma^(1/rho). */
    public static double[] karras(int n, double sigmaMin, double sigmaMax, double rho) {
        check(n, sigmaMin, sigmaMax);
        double[] ramp = linspace(0, 1, n);
        double minInv = Math.pow(sigmaMin, 1 / rho);
        double maxInv = Math.pow(sigmaMax, 1 / rho);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            s[i] = Math.pow(maxInv + ramp[i] * (minInv - maxInv), rho);
        }
        return s;
    }

    /** Sigmas evenly spaced in log sigma. */
    public static double[] exponential(int n, double sigmaMin, double sigmaMax) {
        check(n, sigmaMin, sigmaMax);
        double[] t = linspace(Math.log(sigmaMax), Math.log(sigmaMin), n);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            s[i] = Math.exp(t[i]);
        }
        return s;
    }

    /** Log sigma following a polynomial ramp of degree rho (rho = 1 is {@link #exponential}). */
    public static double[] polyexponential(int n, double sigmaMin, double sigmaMax, double rho) {
        check(n, sigmaMin, sigmaMax);
        double[] ramp = linspace(1, 0, n);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            s[i] = Math.exp(Math.pow(ramp[i], rho) * (Math.log(sigmaMax) - Math.log(sigmaMin)) + Math.log(sigmaMin));
        }
        return s;
    }

    /** The continuous VP schedule of Song et al. (2021): sigma(t) = sqrt(exp(beta_d t²/2 + beta_min t) − 1), t from 1 to epsS. */
    public static double[] vp(int n, double betaD, double betaMin, double epsS) {
        if (n < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + n);
        }
        double[] t = linspace(1, epsS, n);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            s[i] = Math.sqrt(Math.exp(betaD * t[i] * t[i] / 2 + betaMin * t[i]) - 1);
        }
        return s;
    }

    /** The VP schedule with the reference's defaults (beta_d 19.9, beta_min 0.1, eps_s 1e-3). */
    public static double[] vp(int n) {
        return vp(n, 19.9, 0.1, 1e-3);
    }

    /**
     * The KL-optimal schedule of Sabour et al. (2024, "Align Your Steps", eq. 8): sigma evenly spaced
     * in arctan sigma, n values from sigmaMax to sigmaMin, then 0 (float32, as ComfyUI's
     * {@code kl_optimal}). n = 1 is undefined there (0/0) and an error here.
     */
    public static double[] klOptimal(int n, double sigmaMin, double sigmaMax) {
        check(n, sigmaMin, sigmaMax);
        if (n < 2) {
            throw new IllegalArgumentException("the KL-optimal schedule needs at least 2 steps, got " + n);
        }
        float aMin = (float) Math.atan(sigmaMin);
        float aMax = (float) Math.atan(sigmaMax);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            float w = (float) i / (float) (n - 1);
            float a = w * aMin + (1f - w) * aMax;
            s[i] = (float) Math.tan(a);
        }
        return s;
    }

    /**
     * The Laplace schedule of Hang et al. (2024) as ComfyUI's {@code get_sigmas_laplace}: log sigma
     * = mu − beta·sign(½ − x)·log(1 − 2|½ − x| + 1e−5) for x evenly spaced in [0, 1], clamped to
     * [sigmaMin, sigmaMax]. n values, no final 0 (ComfyUI appends none either).
     */
    public static double[] laplace(int n, double sigmaMin, double sigmaMax, double mu, double beta) {
        check(n, sigmaMin, sigmaMax);
        double[] x = linspaceFloat32(0, 1, n);
        double[] s = new double[n];
        for (int i = 0; i < n; i++) {
            float d = (float) (0.5f - x[i]);
            float lmb = (float) (mu - beta * Math.signum(d) * (float) Math.log(1f - 2f * Math.abs(d) + 1e-5f));
            s[i] = Math.min(Math.max((float) Math.exp(lmb), (float) sigmaMin), (float) sigmaMax);
        }
        return s;
    }

    /**
     * The linear-quadratic schedule of Mochi (Genmo 2024), as ComfyUI's {@code linear_quadratic}: in
     * units of sigmaMax, 1 − sigma falls linearly to thresholdNoise over linearSteps steps, then
     * quadratically to 1; ends in 0. ComfyUI uses threshold 0.025 and linearSteps = steps / 2.
     */
    public static double[] linearQuadratic(int steps, double sigmaMax, double thresholdNoise, int linearSteps) {
        if (steps < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + steps);
        }
        double[] f = new double[steps + 1];
        if (steps == 1) {
            f[0] = 1;
        } else {
            if (linearSteps < 1 || linearSteps >= steps) {
                throw new IllegalArgumentException("linear steps must be in [1, steps), got " + linearSteps);
            }
            double stepDiff = linearSteps - thresholdNoise * steps;
            int quadraticSteps = steps - linearSteps;
            double qc = stepDiff / (linearSteps * (double) quadraticSteps * quadraticSteps);
            double lc = thresholdNoise / linearSteps - 2 * stepDiff / ((double) quadraticSteps * quadraticSteps);
            double c0 = qc * linearSteps * linearSteps;
            for (int i = 0; i < steps; i++) {
                double v = i < linearSteps ? i * thresholdNoise / linearSteps : qc * i * i + lc * i + c0;
                f[i] = 1 - v;
            }
        }
        float max = (float) sigmaMax;
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) f[i] * max;
        }
        return f;
    }

    /** {@link #linearQuadratic(int, double, double, int)} with ComfyUI's defaults (threshold 0.025, half the steps linear). */
    public static double[] linearQuadratic(int steps, double sigmaMax) {
        return linearQuadratic(steps, sigmaMax, 0.025, Math.max(steps / 2, 1));
    }

    /** torch.linspace in float32: the step and every element rounded to float as torch computes them. */
    public static double[] linspaceFloat32(double a, double b, int n) {
        double[] r = new double[n];
        float fa = (float) a;
        float fb = (float) b;
        if (n == 1) {
            r[0] = fa;
            return r;
        }
        float step = (fb - fa) / (n - 1);
        for (int i = 0; i < n; i++) {
            r[i] = i < n / 2 ? fa + step * i : fb - step * (n - 1 - i);
        }
        return r;
    }

    /** torch.linspace(a, b, n): filled symmetrically from both ends, as the reference computes it. */
    public static double[] linspace(double a, double b, int n) {
        double[] r = new double[n];
        if (n == 1) {
            r[0] = a;
            return r;
        }
        double step = (b - a) / (n - 1);
        for (int i = 0; i < n; i++) {
            r[i] = i < n / 2 ? a + i * step : b - (n - 1 - i) * step;
        }
        return r;
    }

    static void check(int n, double sigmaMin, double sigmaMax) {
        if (n < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + n);
        }
        if (!(sigmaMin > 0) || !(sigmaMax >= sigmaMin) || Double.isInfinite(sigmaMax)) {
            throw new IllegalArgumentException("a schedule needs 0 < sigma_min <= sigma_max < inf, got sigma_min="
                    + sigmaMin + " sigma_max=" + sigmaMax);
        }
    }
}
