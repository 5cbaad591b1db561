package dev.jdiffusion.samplers;

/**
 * A guided denoiser that also hands out the unconditional prediction of the same evaluation, which
 * the CFG++ samplers (Chung et al. 2024) step along instead of the guided one. Any other
 * {@link Denoiser} counts as its own unconditional prediction (guidance scale 1); see
 * {@link #evaluate(Denoiser, double[], double)}.
 */
public interface GuidedDenoiser extends Denoiser {
    /** The guided and the unconditional prediction of one evaluation at {@code (x, sigma)}. */
    Prediction predict(double[] x, double sigma);

    @Override
    default double[] denoise(double[] x, double sigma) {
        return predict(x, sigma).denoised();
    }

    /** {@code denoised} = the guided estimate, {@code uncond} = the unconditional one, both from the same (x, σ). */
    record Prediction(double[] denoised, double[] uncond) {
    }

    /** One evaluation of {@code model}: both predictions when it is guided, else its estimate twice. */
    static Prediction evaluate(Denoiser model, double[] x, double sigma) {
        if (model instanceof GuidedDenoiser g) {
            return g.predict(x, sigma);
        }
        double[] d = model.denoise(x, sigma);
        return new Prediction(d, d);
    }
}
