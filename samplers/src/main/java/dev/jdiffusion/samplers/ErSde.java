package dev.jdiffusion.samplers;

/**
 * ER-SDE-Solver (Cui et al. 2023; ComfyUI {@code sample_er_sde}): an extended reverse-time SDE
 * solver of up to third order whose noise is shaped by a noise-scaler function
 * {@code ns(v) = v·(e^{v^0.3} + 10)}; the integrals of 1/ns are taken by a 200-point quadrature, as
 * the reference does. {@code sNoise} = 0 gives the ODE (ER-ODE) form. The step to sigma 0 returns the
 * estimate.
 *
 * <p>The reference builds its quadrature points from a float32 {@code arange}, so the points, the
 * noise scaler at them and the two sums are float32 arithmetic even when everything else is double.
 * This class does the same, with the sums in the order PyTorch's vectorised (AVX2) CPU reduction adds
 * them, so it reproduces the reference to double rounding rather than to the float32 quadrature's
 * own error (about 10⁻⁸ of the result).
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

    /** The noise scaler in float32, each operation rounded as PyTorch's float32 kernels round it. */
    static float noiseScalerFloat32(float v) {
        float p = (float) Math.pow(v, 0.3f);
        float e = (float) Math.exp(p);
        return v * (e + 10f);
    }

    /**
     * A float32 sum in the order of PyTorch's AVX2 CPU reduction for fewer than 512 elements: 8-lane
     * vectors accumulated round-robin into 4 vector accumulators (a leftover vector into the first),
     * the accumulators added in order, then the scalar tail and the 8 lanes added one by one.
     */
    static float torchSum(float[] a) {
        final int lanes = 8;
        final int ilp = 4;
        int vectors = a.length / lanes;
        if (vectors / ilp >= 16) {
            throw new IllegalArgumentException("the cascade of longer sums is not modelled: " + a.length + " elements");
        }
        float[][] acc = new float[ilp][lanes];
        int rows = vectors / ilp;
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < ilp; k++) {
                int base = (r * ilp + k) * lanes;
                for (int l = 0; l < lanes; l++) {
                    acc[k][l] += a[base + l];
                }
            }
        }
        for (int v = rows * ilp; v < vectors; v++) {
            for (int l = 0; l < lanes; l++) {
                acc[0][l] += a[v * lanes + l];
            }
        }
        for (int k = 1; k < ilp; k++) {
            for (int l = 0; l < lanes; l++) {
                acc[0][l] += acc[k][l];
            }
        }
        float total = 0;
        for (int i = vectors * lanes; i < a.length; i++) {
            total += a[i];
        }
        for (int l = 0; l < lanes; l++) {
            total += acc[0][l];
        }
        return total;
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
                    float stepF = (float) step;
                    float[] inv = new float[POINTS];
                    float[] rel = new float[POINTS];
                    for (int k = 0; k < POINTS; k++) {
                        float pos = (float) k * stepF + (float) next;
                        float scaled = noiseScalerFloat32(pos);
                        inv[k] = 1f / scaled;
                        rel[k] = (pos - (float) s) / scaled;
                    }
                    double sum = torchSum(inv) * step;
                    double sumU = torchSum(rel) * step;
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
