package dev.jdiffusion.samplers;

import java.util.List;
import java.util.Locale;

/**
 * Noise schedules by the names users pick in AUTOMATIC1111 ("Automatic", "Uniform", "Karras",
 * "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps", "Simple",
 * "Normal", "DDIM", "Beta") and in ComfyUI ({@code normal}, {@code karras}, {@code exponential},
 * {@code sgm_uniform}, {@code simple}, {@code ddim_uniform}, {@code beta}, {@code linear_quadratic},
 * {@code kl_optimal}, and the {@code laplace}, Align Your Steps and GITS scheduler nodes), computed
 * for a model's discrete schedule: the continuous ones span the model's sigma range. Names are
 * matched ignoring case, spaces and underscores.
 */
public final class ScheduleNames {
    private static final List<String> NAMES = List.of("Automatic", "Uniform", "Karras", "Exponential", "Polyexponential",
            "SGM Uniform", "KL Optimal", "Align Your Steps", "Align Your Steps SDXL", "Simple", "Normal", "DDIM", "Beta",
            "ddim_uniform", "linear_quadratic", "laplace", "GITS");

    private ScheduleNames() {
    }

    public static List<String> names() {
        return NAMES;
    }

    /**
     * {@code steps} sigmas of the named schedule for the model, ending in 0 (DDIM: at the model's
     * smallest sigma, as the reference does; laplace: at sigma_min, as ComfyUI's node does). Like the
     * tools, beta can give fewer (repeated timesteps are dropped) and DDIM / ddim_uniform one more
     * (every (1000 // steps)-th timestep). With {@code discardPenultimate} one more is
     * computed and the second-to-last dropped, as the tools do for DPM2-type samplers. The
     * ComfyUI-only schedules return float32 values, as ComfyUI does.
     */
    public static double[] sigmas(String name, DiscreteSchedule model, int steps, boolean discardPenultimate) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        int n = discardPenultimate ? steps + 1 : steps;
        double min = model.sigmaMin();
        double max = model.sigmaMax();
        double[] s = switch (key(name)) {
            case "automatic", "uniform" -> model.uniform(n);
            case "karras" -> Schedules.karras(n, min, max, 7);
            case "exponential" -> Schedules.exponential(n, min, max);
            case "polyexponential" -> Schedules.polyexponential(n, min, max, 1);
            case "ddim" -> model.ddimSigmas(n);
            case "normal" -> ModelSampling.of(model).normal(n);
            case "sgmuniform" -> ModelSampling.of(model).sgmUniform(n);
            case "simple" -> ModelSampling.of(model).simple(n);
            case "ddimuniform" -> ModelSampling.of(model).ddimUniform(n);
            case "beta" -> ModelSampling.of(model).beta(n, 0.6, 0.6);
            case "kloptimal" -> Schedules.klOptimal(n, min, max);
            case "linearquadratic" -> Schedules.linearQuadratic(n, max);
            case "laplace" -> Schedules.laplace(n, min, max, 0, 0.5);
            case "alignyoursteps", "alignyourstepssd1", "ayssd1", "ays" -> AlignYourSteps.sigmas(AlignYourSteps.Model.SD1,
                    n, 1);
            case "alignyourstepssdxl", "ayssdxl" -> AlignYourSteps.sigmas(AlignYourSteps.Model.SDXL, n, 1);
            case "gits" -> AlignYourSteps.gits(1.20, n, 1);
            default -> throw new IllegalArgumentException("unknown schedule \"" + name + "\"; known: " + String.join(", ", NAMES));
        };
        return discardPenultimate ? withoutPenultimate(s) : s;
    }

    /** The schedule without its second-to-last sigma (computed with one step more, as the tools do for DPM2-type samplers). */
    public static double[] withoutPenultimate(double[] s) {
        if (s.length < 3) {
            throw new IllegalArgumentException("a schedule of " + s.length + " sigmas has no penultimate sigma to drop");
        }
        double[] r = new double[s.length - 1];
        System.arraycopy(s, 0, r, 0, s.length - 2);
        r[r.length - 1] = s[s.length - 1];
        return r;
    }

    private static String key(String name) {
        return name == null ? "" : name.replace(" ", "").replace("_", "").toLowerCase(Locale.ROOT);
    }
}
