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
