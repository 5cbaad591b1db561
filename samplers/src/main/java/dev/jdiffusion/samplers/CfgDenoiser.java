package dev.jdiffusion.samplers;

import java.util.Arrays;

/**
 * Classifier-free guidance (Ho & Salimans 2022): denoised = uncond + scale·(cond − uncond), with
 * cond and uncond from one batch of model evaluations. With several prompts (composable diffusion,
 * Liu et al. 2022; A1111's {@code AND}) each has a weight: denoised = uncond + scale·Σ wₖ(condₖ − uncond).
 *
 * <p>With {@code rescale} φ &gt; 0, the guided result is rescaled as Lin et al. 2023 propose (§3.4,
 * diffusers' {@code guidance_rescale}, ComfyUI's RescaleCFG, A1111's "CFG Rescale φ"): in v-space
 * (v = (x/(σ²+1) − denoised)·sqrt(σ²+1)/σ whatever the model predicts), each item's guided v is scaled
 * to the standard deviation (unbiased, over the item) of the prompt's v, and mixed with the plain
 * guided one: v = φ·v_cfg·std(v_cond)/std(v_cfg) + (1 − φ)·v_cfg. With several prompts the prompt's v is
 * their weighted mix at scale 1. {@code itemSize} is the number of values of one item (the latent of
 * one image); 0 takes the whole batch as one item.
 */
public record CfgDenoiser(PairedDenoiser model, double scale, double[] weights, double rescale, int itemSize)
        implements GuidedDenoiser {
    public CfgDenoiser {
        if (!(rescale >= 0 && rescale <= 1)) {
            throw new IllegalArgumentException("CFG rescale must be in [0, 1], got " + rescale);
        }
        if (itemSize < 0) {
            throw new IllegalArgumentException("item size must be >= 0, got " + itemSize);
        }
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

    /** Guidance without rescaling. */
    public CfgDenoiser(PairedDenoiser model, double scale, double[] weights) {
        this(model, scale, weights, 0, 0);
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
        if (rescale > 0 && sigma > 0) {
            double[] cond = uncond.clone();
            for (int k = 0; k < weights.length; k++) {
                int off = (k + 1) * n;
                for (int i = 0; i < n; i++) {
                    cond[i] += weights[k] * (all[off + i] - uncond[i]);
                }
            }
            rescale(x, sigma, cond, out);
        }
        return new Prediction(out, uncond);
    }

    /** Rescales {@code guided} in place, item by item, in v-space. */
    private void rescale(double[] x, double sigma, double[] cond, double[] guided) {
        int per = itemSize == 0 ? x.length : itemSize;
        if (x.length % per != 0) {
            throw new IllegalArgumentException(x.length + " values are not whole items of " + per);
        }
        double s2 = sigma * sigma + 1;
        double toV = Math.sqrt(s2) / sigma;
        double[] vc = new double[per];
        double[] vg = new double[per];
        for (int start = 0; start < x.length; start += per) {
            for (int i = 0; i < per; i++) {
                double skip = x[start + i] / s2;
                vc[i] = (skip - cond[start + i]) * toV;
                vg[i] = (skip - guided[start + i]) * toV;
            }
            double sg = std(vg);
            double factor = sg == 0 ? 1 : std(vc) / sg;
            for (int i = 0; i < per; i++) {
                double v = rescale * vg[i] * factor + (1 - rescale) * vg[i];
                guided[start + i] = x[start + i] / s2 - v / toV;
            }
        }
    }

    /** The unbiased standard deviation (torch.std's default). */
    private static double std(double[] v) {
        if (v.length < 2) {
            return 0;
        }
        double mean = 0;
        for (double e : v) {
            mean += e;
        }
        mean /= v.length;
        double ss = 0;
        for (double e : v) {
            ss += (e - mean) * (e - mean);
        }
        return Math.sqrt(ss / (v.length - 1));
    }
}
