package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class SamplerStudyTest {
    @Test
    void measuresOrdersOfDeterministicSamplersAndScoresStochasticOnesByTheirVariance() {
        List<SamplerStudy.Row> rows = SamplerStudy.run(List.of("Euler", "DPM++ 2M", "dpmpp_2m", "Restart", "Euler a"),
                "Karras", new int[] {80, 20, 40}, 3);
        assertEquals(List.of("Euler", "DPM++ 2M", "Restart", "Euler a"), rows.stream().map(SamplerStudy.Row::sampler).toList(),
                "the same sampler under two names is run once");
        assertEquals(1, rows.get(0).order(), 0.1);
        assertEquals(2, rows.get(1).order(), 0.2);
        assertTrue(rows.get(0).errors()[0] > rows.get(0).errors()[2], "errors by increasing step count");
        // Restart only draws noise from 20 steps on, and then is stochastic
        assertEquals(SamplerStudy.Metric.VARIANCE_ERROR, rows.get(2).metric());
        assertEquals(SamplerStudy.Metric.VARIANCE_ERROR, rows.get(3).metric());
        assertTrue(Double.isNaN(rows.get(3).order()));
        assertTrue(rows.get(3).errors()[2] < 0.2, "Euler a at 80 steps: " + rows.get(3).errors()[2]);
        assertThrows(IllegalArgumentException.class, () -> SamplerStudy.run(List.of("Euler"), "Karras", new int[] {1}, 0));
        assertThrows(IllegalArgumentException.class, () -> SamplerStudy.run(List.of("Euler"), "Karras", new int[0], 0));
    }
}
