package dev.jdiffusion.samplers;

import java.util.List;
import java.util.Locale;

/**
 * Noise schedules by the names users pick (A1111's "Automatic", "Uniform", "Karras", "Exponential",
 * "Polyexponential", "DDIM"; ComfyUI's {@code karras}, {@code exponential}), computed for a model's
 * discrete schedule: the continuous ones span the model's sigma range.
 */
public final class ScheduleNames {
    private static final List<String> NAMES = List.of("Automatic", "Uniform", "Karras", "Exponential", "Polyexponential",
            "DDIM", "karras", "exponential");

    private ScheduleNames() {
    }

    public static List<String> names() {
        return NAMES;
    }

    /**
     * {@code steps} sigmas of the named schedule for the model, ending in 0 (DDIM: at the model's
     * smallest sigma, as the reference does). With {@code discardPenultimate} one more is computed
     * and the second-to-last dropped, as the tools do for DPM2-type samplers.
     */
    public static double[] sigmas(String name, DiscreteSchedule model, int steps, boolean discardPenultimate) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        int n = discardPenultimate ? steps + 1 : steps;
        double min = model.sigmaMin();
        double max = model.sigmaMax();
        double[] s = switch (name == null ? "" : name.strip().toLowerCase(Locale.ROOT)) {
            case "automatic", "uniform" -> model.uniform(n);
            case "karras" -> Schedules.karras(n, min, max, 7);
            case "exponential" -> Schedules.exponential(n, min, max);
            case "polyexponential" -> Schedules.polyexponential(n, min, max, 1);
            case "ddim" -> model.ddimSigmas(n);
            default -> throw new IllegalArgumentException("unknown schedule \"" + name + "\"; known: " + String.join(", ", NAMES));
        };
        if (!discardPenultimate) {
            return s;
        }
        double[] r = new double[s.length - 1];
        System.arraycopy(s, 0, r, 0, s.length - 2);
        r[r.length - 1] = s[s.length - 1];
        return r;
    }
}
