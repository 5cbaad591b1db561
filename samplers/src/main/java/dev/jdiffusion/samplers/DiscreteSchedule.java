package dev.jdiffusion.samplers;

/**
 * A model's own discrete DDPM schedule: {@code alphasCumprod[t]} for timesteps t = 0..T−1, the
 * matching sigmas sigma_t = sqrt((1 − ᾱ_t)/ᾱ_t), and the conversions between sigma and a real
 * timestep by linear interpolation in log sigma (k-diffusion {@code DiscreteSchedule}).
 */
public final class DiscreteSchedule {
    private final double[] alphasCumprod;
    private final double[] sigmas;
    private final double[] logSigmas;

    private DiscreteSchedule(double[] alphasCumprod) {
        if (alphasCumprod.length < 2) {
            throw new IllegalArgumentException("a discrete schedule needs at least 2 timesteps, got " + alphasCumprod.length);
        }
        this.alphasCumprod = alphasCumprod.clone();
        this.sigmas = new double[alphasCumprod.length];
        this.logSigmas = new double[alphasCumprod.length];
        for (int t = 0; t < sigmas.length; t++) {
            double a = alphasCumprod[t];
            if (!(a > 0 && a < 1)) {
                throw new IllegalArgumentException("alphas_cumprod[" + t + "] = " + a + " is not in (0, 1)");
            }
            if (t > 0 && !(a < alphasCumprod[t - 1])) {
                throw new IllegalArgumentException("alphas_cumprod must decrease; it does not at timestep " + t);
            }
            sigmas[t] = Math.sqrt((1 - a) / a);
            logSigmas[t] = Math.log(sigmas[t]);
        }
    }

    public static DiscreteSchedule of(double[] alphasCumprod) {
        return new DiscreteSchedule(alphasCumprod);
    }

    /** Betas linear in sqrt(beta) ("linear" in CompVis, "scaled_linear" in diffusers): SD 1.x, 2.x and XL use 0.00085 to 0.012 over 1000 steps. */
    public static double[] scaledLinearBetas(int timesteps, double start, double end) {
        double[] r = Schedules.linspace(Math.sqrt(start), Math.sqrt(end), timesteps);
        for (int i = 0; i < r.length; i++) {
            r[i] = r[i] * r[i];
        }
        return r;
    }

    /** cumprod(1 − beta). */
    public static double[] alphasCumprod(double[] betas) {
        double[] a = new double[betas.length];
        double p = 1;
        for (int i = 0; i < a.length; i++) {
            p *= 1 - betas[i];
            a[i] = p;
        }
        return a;
    }

    /** Stable Diffusion's training schedule, in float64. */
    public static DiscreteSchedule stableDiffusion() {
        return of(alphasCumprod(scaledLinearBetas(1000, 0.00085, 0.012)));
    }

    /** The same schedule rounded to float32, as LatentDiffusion stores it and A1111/ComfyUI see it. */
    public static DiscreteSchedule stableDiffusionFloat32() {
        double[] a = alphasCumprod(scaledLinearBetas(1000, 0.00085, 0.012));
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) a[i];
        }
        return of(a);
    }

    /**
     * The alphas_cumprod of the last timestep after {@link #zeroTerminalSnr()}: A1111's stand-in for 0
     * (an SNR of exactly 0 would make the largest sigma infinite).
     */
    public static final double ZERO_TERMINAL_ALPHA_CUMPROD = 4.8973451890853435e-08;

    /**
     * This schedule rescaled to a zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules
     * and Sample Steps Are Flawed", Algorithm 1): sqrt(ᾱ) shifted so the last timestep's is 0 and
     * scaled so the first keeps its value; then the last ᾱ is set to {@link #ZERO_TERMINAL_ALPHA_CUMPROD}
     * as A1111 does, so that sigma_max stays finite (about 4519). For v-prediction models trained this
     * way; values are rounded to float32 when this schedule's are.
     */
    public DiscreteSchedule zeroTerminalSnr() {
        int n = alphasCumprod.length;
        double first = Math.sqrt(alphasCumprod[0]);
        double last = Math.sqrt(alphasCumprod[n - 1]);
        boolean float32 = true;
        for (double a : alphasCumprod) {
            float32 &= a == (float) a;
        }
        double[] a = new double[n];
        for (int t = 0; t < n; t++) {
            double s = (Math.sqrt(alphasCumprod[t]) - last) * first / (first - last);
            a[t] = float32 ? (float) (s * s) : s * s;
        }
        a[n - 1] = float32 ? (float) ZERO_TERMINAL_ALPHA_CUMPROD : ZERO_TERMINAL_ALPHA_CUMPROD;
        return of(a);
    }

    public int timesteps() {
        return sigmas.length;
    }

    public double[] alphasCumprod() {
        return alphasCumprod.clone();
    }

    /** sigma_t for every integer timestep t. */
    public double[] sigmas() {
        return sigmas.clone();
    }

    public double sigmaMin() {
        return sigmas[0];
    }

    public double sigmaMax() {
        return sigmas[sigmas.length - 1];
    }

    /** The real timestep of a sigma: linear interpolation in log sigma between table neighbours, clamped to [0, T−1]. */
    public double sigmaToT(double sigma) {
        double logSigma = Math.log(sigma);
        int count = 0;
        for (double l : logSigmas) {
            if (logSigma - l >= 0) {
                count++;
            }
        }
        int low = Math.min(Math.max(count - 1, 0), logSigmas.length - 2);
        double lo = logSigmas[low];
        double hi = logSigmas[low + 1];
        double w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
        return (1 - w) * low + w * (low + 1);
    }

    /** The integer timestep whose sigma is nearest in log sigma (the first on a tie). */
    public int sigmaToTQuantized(double sigma) {
        double logSigma = Math.log(sigma);
        int best = 0;
        for (int t = 1; t < logSigmas.length; t++) {
            if (Math.abs(logSigma - logSigmas[t]) < Math.abs(logSigma - logSigmas[best])) {
                best = t;
            }
        }
        return best;
    }

    /** The sigma of a real timestep: t is rounded to float32 first (as the reference's {@code t.float()}), then log sigma is interpolated. */
    public double tToSigma(double t) {
        float tf = (float) t;
        if (!(tf >= 0 && tf <= timesteps() - 1)) {
            throw new IllegalArgumentException("timestep " + t + " is outside [0, " + (timesteps() - 1) + "]");
        }
        int low = (int) Math.floor(tf);
        int high = (int) Math.ceil(tf);
        double w = tf - (float) Math.floor(tf);
        return Math.exp((1 - w) * logSigmas[low] + w * logSigmas[high]);
    }

    /** n sigmas at timesteps evenly spaced from T−1 down to 0, then 0: A1111's "Automatic"/"Uniform", k-diffusion {@code get_sigmas}. */
    public double[] uniform(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("a schedule needs at least 1 step, got " + n);
        }
        double[] t = Schedules.linspace(timesteps() - 1, 0, n);
        double[] s = new double[n + 1];
        for (int i = 0; i < n; i++) {
            s[i] = tToSigma(t[i]);
        }
        return s;
    }

    /**
     * CompVis DDIM's "uniform" timesteps for S steps: 1, c+1, 2c+1, … below T with c = T // S (so
     * S = 30 gives 31 of them), ascending.
     */
    public int[] ddimTimesteps(int steps) {
        if (steps < 1 || steps > timesteps()) {
            throw new IllegalArgumentException("DDIM steps must be 1.." + timesteps() + ", got " + steps);
        }
        int c = timesteps() / steps;
        int n = (timesteps() + c - 1) / c;
        int[] ts = new int[n];
        for (int i = 0; i < n; i++) {
            ts[i] = i * c + 1;
        }
        if (ts[n - 1] >= timesteps()) {
            throw new IllegalArgumentException("DDIM with " + steps + " steps would need timestep " + ts[n - 1]
                    + ", beyond the model's " + timesteps());
        }
        return ts;
    }

    /**
     * The sigmas CompVis DDIM and PLMS step through: those of {@link #ddimTimesteps} from the largest
     * down, then that of timestep 0 (the reference ends at t = 0, not at a clean sample).
     */
    public double[] ddimSigmas(int steps) {
        int[] ts = ddimTimesteps(steps);
        double[] s = new double[ts.length + 1];
        for (int i = 0; i < ts.length; i++) {
            s[i] = sigmas[ts[ts.length - 1 - i]];
        }
        s[ts.length] = sigmas[0];
        return s;
    }
}
