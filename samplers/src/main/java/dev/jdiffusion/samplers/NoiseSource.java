package dev.jdiffusion.samplers;

/**
 * Where a sampler's fresh Gaussian noise comes from. Each call returns a new array of standard
 * normal values, one per element of the sample, for the step from {@code sigma} to
 * {@code sigmaNext} (a Brownian-tree source uses the interval; an independent source ignores it).
 */
@FunctionalInterface
public interface NoiseSource {
    double[] next(double sigma, double sigmaNext);
}
