package dev.jdiffusion.samplers;

import java.util.concurrent.CancellationException;

/** Thrown by a sampler when its {@link StepListener} asked to stop. */
public final class SamplingCancelledException extends CancellationException {
    private final int step;

    public SamplingCancelledException(int step) {
        super("sampling cancelled at step " + step);
        this.step = step;
    }

    /** The index of the step whose report asked to stop. */
    public int step() {
        return step;
    }
}
