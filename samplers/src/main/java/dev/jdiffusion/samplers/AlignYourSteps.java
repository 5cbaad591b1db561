package dev.jdiffusion.samplers;

import java.util.Arrays;

/**
 * Optimised sampling schedules read from tables: Align Your Steps (Sabour, Fidler and Kreis 2024;
 * 10-step tables for SD 1.5 and SDXL) and GITS (Chen et al. 2024, "On the Trajectory Regularity of
 * ODE-based Diffusion Sampling"; a table per coefficient and step count). Other step counts are
 * interpolated log-linearly from the table, as ComfyUI's scheduler nodes do; a denoise below 1
 * keeps the tail of the schedule. The last value is always 0.
 */
public final class AlignYourSteps {
    /** The models the paper optimised schedules for. */
    public enum Model {
        SD1(14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
                0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
        SDXL(14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
                0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582);

        private final double[] sigmas;

        Model(double... sigmas) {
            this.sigmas = sigmas;
        }

        /** The paper's 10-step schedule (11 sigmas, ending at the model's sigma_min). */
        public double[] table() {
            return sigmas.clone();
        }
    }

    private AlignYourSteps() {
    }

    /** The Align Your Steps schedule for a model: steps + 1 values (fewer with denoise < 1), last 0, float32. */
    public static double[] sigmas(Model model, int steps, double denoise) {
        return fromTable(model.sigmas, steps, denoise);
    }

    /**
     * The GITS schedule for a coefficient (0.80 to 1.50 in steps of 0.05; ComfyUI's default is 1.20):
     * the table row for 2..20 steps, the 20-step row interpolated beyond.
     */
    public static double[] gits(double coefficient, int steps, double denoise) {
        if (steps < 2) {
            throw new IllegalArgumentException("GITS needs at least 2 steps, got " + steps);
        }
        double[][] rows = GitsTable.rows(coefficient);
        double[] row = rows[Math.min(steps, GitsTable.MAX_STEPS) - 2];
        return fromTable(row, steps, denoise);
    }

    private static double[] fromTable(double[] table, int steps, double denoise) {
        if (steps < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + steps);
        }
        if (!(denoise <= 1)) {
            throw new IllegalArgumentException("denoise must be at most 1, got " + denoise);
        }
        if (denoise <= 0) {
            return new double[0];
        }
        int total = denoise < 1 ? (int) Math.rint(steps * denoise) : steps;
        double[] s = steps + 1 == table.length ? table.clone() : logLinearInterpolation(table, steps + 1);
        double[] r = Arrays.copyOfRange(s, s.length - (total + 1), s.length);
        for (int i = 0; i < r.length; i++) {
            r[i] = (float) r[i];
        }
        r[r.length - 1] = 0;
        return r;
    }

    /** n points of a decreasing sequence, interpolated linearly in log sigma over evenly spaced positions. */
    static double[] logLinearInterpolation(double[] decreasing, int n) {
        int m = decreasing.length;
        double[] xs = Schedules.linspace(0, 1, m);
        double[] ys = new double[m];
        for (int i = 0; i < m; i++) {
            ys[i] = Math.log(decreasing[m - 1 - i]);
        }
        double[] x = Schedules.linspace(0, 1, n);
        double[] r = new double[n];
        for (int i = 0; i < n; i++) {
            r[n - 1 - i] = Math.exp(interpolate(x[i], xs, ys));
        }
        return r;
    }

    /** numpy.interp: piecewise linear through (xs, ys), xs increasing, clamped at the ends. */
    private static double interpolate(double x, double[] xs, double[] ys) {
        int last = xs.length - 1;
        if (x <= xs[0]) {
            return ys[0];
        }
        if (x >= xs[last]) {
            return ys[last];
        }
        int j = 0;
        while (xs[j + 1] <= x) {
            j++;
        }
        double slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
        return slope * (x - xs[j]) + ys[j];
    }
}
