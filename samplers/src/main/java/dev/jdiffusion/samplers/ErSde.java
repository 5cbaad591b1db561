package dev.jdiffusion.samplers;

/**
 * ER-SDE-Solver (Cui et al. 2023; ComfyUI {@code sample_er_sde}): an extended reverse-time SDE
 * solver of up to third order whose noise is shaped by a noise-scaler function
 * {@code ns(v) = v·(e^{v^0.3} + 10)}; the integrals of 1/ns are taken by a 200-point quadrature, as
 * the reference does. {@code sNoise} = 0 gives the ODE (ER-ODE) form. The step to sigma 0 returns the
 * estimate.
 */
public record ErSde(double sNoise, int maxStage) implements Sampler {
    private static final int POINTS = 200;

    public ErSde() {
        this(1, 3);
    }

    public ErSde {
        Ancestral.check(0, sNoise);
        if (maxStage < 1 || maxStage > 3) {
            throw new IllegalArgumentException("ER-SDE stages must be 1 to 3, got " + maxStage);
        }
    }

    static double noiseScaler(double v) {
        return v * (Math.exp(Math.pow(v, 0.3)) + 10);
    }

    @Override
    public double[] sample(Denoiser model, double[] x0, double[] sigmas, NoiseSource noise, StepListener listener) {
        Sampling.requireSchedule(sigmas);
        double[] x = x0.clone();
        double[] oldDen = null;
        double[] oldDd = null;
        for (int i = 0; i < sigmas.length - 1; i++) {
            double s = sigmas[i];
            double next = sigmas[i + 1];
            double[] den = model.denoise(x, s);
            Sampling.report(listener, new Step(i, s, s, x, den));
            int stage = Math.min(maxStage, i + 1);
            if (next == 0) {
                x = den.clone();
            } else {
                double r = noiseScaler(next) / noiseScaler(s);
                x = Vec.lin(r, x, 1 - r, den);
                if (stage >= 2) {
                    double dt = next - s;
                    double step = -dt / POINTS;
                    double sum = 0;
                    double sumU = 0;
                    for (int k = 0; k < POINTS; k++) {
                        double pos = next + k * step;
                        double w = step / noiseScaler(pos);
                        sum += w;
                        sumU += w * (pos - s);
                    }
                    double nsT = noiseScaler(next);
                    double back = 1 / (s - sigmas[i - 1]);
                    double[] dd = Vec.lin(back, den, -back, oldDen);
                    Vec.addScaled(x, dt + sum * nsT, dd);
                    if (stage >= 3) {
                        double w = 2 / (s - sigmas[i - 2]);
                        double[] du = Vec.lin(w, dd, -w, oldDd);
                        Vec.addScaled(x, dt * dt / 2 + sumU * nsT, du);
                    }
                    oldDd = dd;
                }
                if (sNoise > 0) {
                    double std = Math.sqrt(next * next - s * s * r * r);
                    Vec.addScaled(x, sNoise * (Double.isNaN(std) ? 0 : std), noise.next(s, next));
                }
            }
            oldDen = den;
        }
        return x;
    }
}
