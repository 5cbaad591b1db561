package dev.jdiffusion.samplers;

/**
 * A denoiser evaluated for two conditionings in one batch: the input is the sample twice (first
 * half for the unconditional/negative prompt, second half for the prompt) and so is the output.
 */
@FunctionalInterface
public interface PairedDenoiser {
    double[] denoisePair(double[] pair, double sigma);
}
