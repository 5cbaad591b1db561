package dev.jdiffusion.samplers;

import java.util.Arrays;

/**
 * Classifier-free guidance (Ho & Salimans 2022): denoised = uncond + scale·(cond − uncond), with
 * cond and uncond from one batch of model evaluations. With several prompts (composable diffusion,
 * Liu et al. 2022; A1111's {@code AND}) each has a weight: denoised = uncond + scale·Σ wₖ(condₖ − uncond).
 */
public record CfgDenoiser(PairedDenoiser model, double scale, double[] weights) implements GuidedDenoiser {
    public CfgDenoiser {
        if (model == null) {
            throw new IllegalArgumentException("CFG needs a model");
        }
        if (!Double.isFinite(scale)) {
            throw new IllegalArgumentException("CFG scale must be a finite number, got " + scale);
        }
        if (weights == null || weights.length == 0) {
            throw new IllegalArgumentException("CFG needs at least one prompt weight");
        }
        for (double w : weights) {
            if (!Double.isFinite(w)) {
                throw new IllegalArgumentException("prompt weights must be finite numbers, got " + Arrays.toString(weights));
            }
        }
        weights = weights.clone();
    }

    /** Guidance towards one prompt. */
    public CfgDenoiser(PairedDenoiser model, double scale) {
        this(model, scale, new double[] {1});
    }

    @Override
    public double[] weights() {
        return weights.clone();
    }

    @Override
    public Prediction predict(double[] x, double sigma) {
        int n = x.length;
        int blocks = 1 + weights.length;
        double[] stacked = new double[blocks * n];
        for (int b = 0; b < blocks; b++) {
            System.arraycopy(x, 0, stacked, b * n, n);
        }
        double[] all = model.denoisePair(stacked, sigma);
        if (all.length != blocks * n) {
            throw new IllegalStateException("the model returned " + all.length + " values for " + blocks + " blocks of " + n);
        }
        double[] uncond = Arrays.copyOf(all, n);
        double[] out = uncond.clone();
        for (int k = 0; k < weights.length; k++) {
            double f = weights[k] * scale;
            int off = (k + 1) * n;
            for (int i = 0; i < n; i++) {
                out[i] += f * (all[off + i] - uncond[i]);
            }
        }
        return new Prediction(out, uncond);
    }
}
