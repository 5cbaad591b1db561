package dev.jdiffusion.samplers;

/**
 * A denoiser evaluated for several conditionings in one batch: the input is the sample repeated,
 * one block per conditioning (first the unconditional/negative prompt's, then each prompt's), and
 * so is the output.
 */
@FunctionalInterface
public interface PairedDenoiser {
    double[] denoisePair(double[] blocks, double sigma);
}
