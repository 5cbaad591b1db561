package dev.jdiffusion.samplers;

/**
 * Turns an eps- or v-predicting {@link DiffusionModel} over a discrete schedule into a
 * {@link Denoiser} (k-diffusion's {@code CompVisDenoiser} / {@code CompVisVDenoiser}, σ_data = 1):
 * c_in = 1/√(σ² + 1), timestep = {@link DiscreteSchedule#sigmaToT}(σ), and
 * eps: D = x − σ·eps; v: D = x/(σ² + 1) − σ/√(σ² + 1)·v.
 */
public record DiscreteDenoiser(DiffusionModel model, DiscreteSchedule schedule, DiffusionModel.Parameterization parameterization)
        implements Denoiser {
    public DiscreteDenoiser {
        if (model == null || schedule == null || parameterization == null) {
            throw new IllegalArgumentException("a discrete denoiser needs a model, a schedule and a parameterization");
        }
    }

    @Override
    public double[] denoise(double[] x, double sigma) {
        double cIn = 1 / Math.sqrt(sigma * sigma + 1);
        double[] scaled = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            scaled[i] = x[i] * cIn;
        }
        double[] out = model.apply(scaled, schedule.sigmaToT(sigma));
        if (out.length != x.length) {
            throw new IllegalStateException("the model returned " + out.length + " values for an input of " + x.length);
        }
        double[] denoised = new double[x.length];
        if (parameterization == DiffusionModel.Parameterization.EPSILON) {
            for (int i = 0; i < x.length; i++) {
                denoised[i] = x[i] - sigma * out[i];
            }
        } else {
            double cSkip = 1 / (sigma * sigma + 1);
            double cOut = -sigma * cIn;
            for (int i = 0; i < x.length; i++) {
                denoised[i] = x[i] * cSkip + out[i] * cOut;
            }
        }
        return denoised;
    }
}
