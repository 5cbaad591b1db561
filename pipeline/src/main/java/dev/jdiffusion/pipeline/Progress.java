package dev.jdiffusion.pipeline;

import java.util.function.IntFunction;

/**
 * Where a request stands after a sampler step: the run of the batch count, the step and the number of
 * steps, the sigma the step started from, and a cheap preview of each image's current estimate of the
 * result (the denoised latent through {@link dev.jdiffusion.core.model.LatentPreview}, at latent
 * resolution), computed only when asked for and only while the listener runs.
 */
public final class Progress {
    private final int run;
    private final int step;
    private final int total;
    private final double sigma;
    private final int batchSize;
    private final IntFunction<GeneratedImage> preview;

    Progress(int run, int step, int total, double sigma, int batchSize, IntFunction<GeneratedImage> preview) {
        this.run = run;
        this.step = step;
        this.total = total;
        this.sigma = sigma;
        this.batchSize = batchSize;
        this.preview = preview;
    }

    /** The run (0 to batch count − 1). */
    public int run() {
        return run;
    }

    /** The step just taken (0 to total − 1). */
    public int step() {
        return step;
    }

    /** The sampler steps of one run. */
    public int total() {
        return total;
    }

    public double sigma() {
        return sigma;
    }

    /** The images of one run. */
    public int batchSize() {
        return batchSize;
    }

    /**
     * Image {@code item} of this run as the sampler now expects it to end, 8-bit RGB at latent resolution,
     * with its seed and no parameters; null when the sampler reports no estimate at this step.
     */
    public GeneratedImage preview(int item) {
        if (item < 0 || item >= batchSize) {
            throw new IndexOutOfBoundsException("item " + item + " of a batch of " + batchSize);
        }
        return preview.apply(item);
    }
}
