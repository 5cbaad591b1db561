package dev.jdiffusion.samplers;

/**
 * A network trained on a discrete DDPM schedule, as the UNet is: it takes the input already scaled
 * to unit variance (x·c_in) and a real-valued timestep, and predicts eps or v
 * ({@link Parameterization}).
 */
@FunctionalInterface
public interface DiffusionModel {
    double[] apply(double[] scaledX, double timestep);

    /** What the network predicts. */
    enum Parameterization {
        /** the noise (SD 1.x, SD 2.x base 512, SDXL) */
        EPSILON,
        /** the velocity v = α·eps − σ·x0 of Salimans & Ho (2022) (SD 2.x 768-v) */
        V_PREDICTION
    }
}
