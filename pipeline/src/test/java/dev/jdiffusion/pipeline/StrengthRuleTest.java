package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jdiffusion.samplers.Schedules;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;

class StrengthRuleTest {
    private static final IntFunction<double[]> KARRAS = n -> Schedules.karras(n, 0.0292, 14.6146, 7);

    private static int steps(StrengthRule r, int steps, double strength) {
        return r.sigmas(KARRAS, steps, strength).length - 1;
    }

    @Test
    void at20StepsAndStrength075TheToolsRunWhatTheyAreKnownToRun() {
        assertEquals(16, steps(StrengthRule.A1111, 20, 0.75));
        assertEquals(20, steps(StrengthRule.A1111_FIXED_STEPS, 20, 0.75));
        assertEquals(20, steps(StrengthRule.COMFYUI, 20, 0.75));
        assertEquals(15, steps(StrengthRule.DIFFUSERS, 20, 0.75));
        // fixed steps and ComfyUI take the tail of a 26-step schedule
        double[] tail = StrengthRule.COMFYUI.sigmas(KARRAS, 20, 0.75);
        assertArrayEquals(java.util.Arrays.copyOfRange(KARRAS.apply(26), 6, 27), tail);
        assertArrayEquals(tail, StrengthRule.A1111_FIXED_STEPS.sigmas(KARRAS, 20, 0.75));
    }

    @Test
    void strengthOneRunsTheWholeScheduleAndZeroNothing() {
        for (StrengthRule r : StrengthRule.values()) {
            assertEquals(0, r.sigmas(KARRAS, 20, 0).length, r.toString());
            double[] all = r.sigmas(KARRAS, 20, 1);
            assertEquals(0, all[all.length - 1], r.toString());
        }
        // A1111 caps the strength at 0.999, so its "1" still skips the first sigma
        assertEquals(20, steps(StrengthRule.A1111, 20, 1));
        assertEquals(20, steps(StrengthRule.COMFYUI, 20, 1));
        assertEquals(20, steps(StrengthRule.DIFFUSERS, 20, 1));
        assertThrows(IllegalArgumentException.class, () -> StrengthRule.A1111.sigmas(KARRAS, 20, 1.5));
        assertThrows(IllegalArgumentException.class, () -> StrengthRule.A1111.sigmas(KARRAS, 20, Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> StrengthRule.A1111.sigmas(KARRAS, 0, 0.5));
        assertEquals(StrengthRule.A1111_FIXED_STEPS, StrengthRule.named("A1111_fixed_steps"));
        assertEquals(StrengthRule.COMFYUI, StrengthRule.named("ComfyUI"));
        assertThrows(IllegalArgumentException.class, () -> StrengthRule.named("photoshop"));
    }
}
