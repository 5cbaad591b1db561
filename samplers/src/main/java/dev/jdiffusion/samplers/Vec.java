package dev.jdiffusion.samplers;

/** The few elementwise operations sampler math needs, on flattened samples. */
final class Vec {
    private Vec() {
    }

    /** {@code a·x}, a new array. */
    static double[] scaled(double a, double[] x) {
        double[] r = new double[x.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = a * x[i];
        }
        return r;
    }

    /** {@code a·x + b·y}, a new array. */
    static double[] lin(double a, double[] x, double b, double[] y) {
        double[] r = new double[x.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = a * x[i] + b * y[i];
        }
        return r;
    }

    /** {@code a·x + b·y + c·z}, a new array. */
    static double[] lin(double a, double[] x, double b, double[] y, double c, double[] z) {
        double[] r = new double[x.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = a * x[i] + b * y[i] + c * z[i];
        }
        return r;
    }

    /** {@code x += scale·Σ_m weights[m]·vectors[m]} in place (summed per element in the order given). */
    static void addCombination(double[] x, double scale, double[] weights, double[][] vectors) {
        for (int k = 0; k < x.length; k++) {
            double sum = 0;
            for (int m = 0; m < weights.length; m++) {
                sum += weights[m] * vectors[m][k];
            }
            x[k] += scale * sum;
        }
    }

    /** {@code x += s·y} in place; returns {@code x}. */
    static double[] addScaled(double[] x, double s, double[] y) {
        for (int i = 0; i < x.length; i++) {
            x[i] += s * y[i];
        }
        return x;
    }

    /** The ODE derivative {@code d = (x − denoised) / sigma} (Karras et al. 2022, eq. 5 with σ(t) = t). */
    static double[] derivative(double[] x, double[] denoised, double sigma) {
        double[] d = new double[x.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = (x[i] - denoised[i]) / sigma;
        }
        return d;
    }
}
