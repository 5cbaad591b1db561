package dev.jdiffusion.samplers;

/**
 * Classifier-free guidance (Ho & Salimans 2022): denoised = uncond + scale·(cond − uncond), with
 * cond and uncond from one batch of two model evaluations.
 */
public record CfgDenoiser(PairedDenoiser model, double scale) implements GuidedDenoiser {
    public CfgDenoiser {
        if (model == null) {
            throw new IllegalArgumentException("CFG needs a model");
        }
        if (!Double.isFinite(scale)) {
            throw new IllegalArgumentException("CFG scale must be a finite number, got " + scale);
        }
    }

    @Override
    public Prediction predict(double[] x, double sigma) {
        int n = x.length;
        double[] pair = new double[2 * n];
        System.arraycopy(x, 0, pair, 0, n);
        System.arraycopy(x, 0, pair, n, n);
        double[] both = model.denoisePair(pair, sigma);
        if (both.length != 2 * n) {
            throw new IllegalStateException("the model returned " + both.length + " values for a pair of " + n);
        }
        double[] out = new double[n];
        double[] uncond = java.util.Arrays.copyOf(both, n);
        for (int i = 0; i < n; i++) {
            out[i] = uncond[i] + scale * (both[n + i] - uncond[i]);
        }
        return new Prediction(out, uncond);
    }
}
