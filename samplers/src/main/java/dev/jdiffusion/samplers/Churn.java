package dev.jdiffusion.samplers;

/**
 * "Churn" of Karras et al. (2022, Algorithm 2): before a step whose sigma lies in
 * [sTmin, sTmax], raise it to sigmaHat = sigma·(1 + gamma), gamma = min(sChurn/n, √2 − 1), by adding
 * fresh noise scaled by sNoise. k-diffusion (and so A1111) draws that noise at the start of every
 * step whether it is used or not, which moves the random stream; ComfyUI draws it only when used.
 */
public record Churn(double sChurn, double sTmin, double sTmax, double sNoise, boolean drawEveryStep) {
    /** No churn (the default of every tool). */
    public static final Churn NONE = new Churn(0, 0, Double.POSITIVE_INFINITY, 1, true);

    public Churn {
        if (!(sChurn >= 0) || Double.isNaN(sTmin) || Double.isNaN(sTmax) || !(sNoise >= 0) || Double.isInfinite(sNoise)) {
            throw new IllegalArgumentException("churn parameters must be s_churn >= 0, s_tmin/s_tmax not NaN, "
                    + "s_noise finite and >= 0; got s_churn=" + sChurn + " s_tmin=" + sTmin + " s_tmax=" + sTmax
                    + " s_noise=" + sNoise);
        }
    }

    /** The same parameters with ComfyUI's rule: noise is drawn only on steps that use it. */
    public Churn drawnOnlyWhenUsed() {
        return new Churn(sChurn, sTmin, sTmax, sNoise, false);
    }

    double gamma(double sigma, int steps) {
        return sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / steps, Math.sqrt(2) - 1) : 0;
    }

    /** Applies the churn of one step to {@code x} in place and returns sigmaHat. */
    double apply(double[] x, double[] sigmas, int i, NoiseSource noise) {
        int steps = sigmas.length - 1;
        double sigma = sigmas[i];
        double gamma = gamma(sigma, steps);
        double[] eps = drawEveryStep || gamma > 0 ? noise.next(sigma, sigmas[i + 1]) : null;
        double sigmaHat = sigma * (gamma + 1);
        if (gamma > 0) {
            Vec.addScaled(x, sNoise * Math.sqrt(sigmaHat * sigmaHat - sigma * sigma), eps);
        }
        return sigmaHat;
    }
}
