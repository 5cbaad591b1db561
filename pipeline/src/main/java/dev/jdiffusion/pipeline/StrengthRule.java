package dev.jdiffusion.pipeline;

import java.util.Arrays;
import java.util.function.IntFunction;

/**
 * How img2img's denoising strength cuts the noise schedule. The tools disagree; at 20 steps and
 * strength 0.75: A1111 runs 16 steps of the 20-step schedule, A1111 with "fixed steps" and ComfyUI run
 * 20 steps of a 26-step schedule, diffusers 15 steps of the 20-step one. Strength 1 keeps the whole
 * schedule (the input is replaced), 0 keeps none (the input is returned, re-encoded).
 */
public enum StrengthRule {
    /** A1111's default: the last int(min(s, 0.999)·steps) + 1 steps of the schedule for {@code steps}. */
    A1111,
    /** A1111 with "img2img: fixed steps": a schedule for int(steps / min(s, 0.999)), its last {@code steps} steps. */
    A1111_FIXED_STEPS,
    /** ComfyUI: a schedule for int(steps / s), its last {@code steps} steps. */
    COMFYUI,
    /** diffusers: the last min(int(steps·s), steps) steps of the schedule for {@code steps}. */
    DIFFUSERS;

    /** By name, ignoring case: a1111, a1111-fixed-steps, comfyui, diffusers. */
    public static StrengthRule named(String name) {
        return switch (name == null ? "" : name.strip().toLowerCase(java.util.Locale.ROOT).replace('_', '-')) {
            case "a1111" -> A1111;
            case "a1111-fixed-steps" -> A1111_FIXED_STEPS;
            case "comfyui" -> COMFYUI;
            case "diffusers" -> DIFFUSERS;
            default -> throw new IllegalArgumentException("unknown strength rule \"" + name
                    + "\"; known: a1111, a1111-fixed-steps, comfyui, diffusers");
        };
    }

    /**
     * The sigmas to run, from {@code schedule.apply(n)} (n steps: n + 1 sigmas ending in 0); empty
     * (no steps) for strength 0.
     */
    public double[] sigmas(IntFunction<double[]> schedule, int steps, double strength) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        if (!(strength >= 0 && strength <= 1)) {
            throw new IllegalArgumentException("denoising strength must be in [0, 1], got " + strength);
        }
        if (strength == 0) {
            return new double[0];
        }
        double capped = Math.min(strength, 0.999);
        return switch (this) {
            case A1111 -> {
                int tEnc = (int) (capped * steps);
                double[] full = schedule.apply(steps);
                yield Arrays.copyOfRange(full, steps - tEnc - 1, full.length);
            }
            case A1111_FIXED_STEPS -> {
                int total = (int) (steps / capped);
                double[] full = schedule.apply(total);
                yield Arrays.copyOfRange(full, total - (steps - 1) - 1, full.length);
            }
            case COMFYUI -> {
                int total = (int) (steps / strength);
                double[] full = schedule.apply(total);
                yield Arrays.copyOfRange(full, full.length - (steps + 1), full.length);
            }
            case DIFFUSERS -> {
                int init = Math.min((int) (steps * strength), steps);
                double[] full = schedule.apply(steps);
                yield Arrays.copyOfRange(full, steps - init, full.length);
            }
        };
    }
}
