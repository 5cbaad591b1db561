package dev.jdiffusion.samplers;

/** Receives every {@link Step}; returning {@code false} cancels sampling (the sampler throws {@link SamplingCancelledException}). */
@FunctionalInterface
public interface StepListener {
    StepListener NONE = step -> true;

    boolean onStep(Step step);
}
