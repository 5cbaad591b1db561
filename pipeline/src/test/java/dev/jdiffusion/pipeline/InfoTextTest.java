package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class InfoTextTest {
    @Test
    void valuesAreQuotedAndNumbersWrittenAsA1111WritesThem() {
        assertEquals("Euler a", InfoText.quote("Euler a"));
        assertEquals("\"a, b\"", InfoText.quote("a, b"));
        assertEquals("\"x: \\\"y\\\"\"", InfoText.quote("x: \"y\""));
        assertEquals("7", InfoText.number(7));
        assertEquals("7.5", InfoText.number(7.5));
        assertEquals("0.75", InfoText.number(0.75));
        GenerationRequest r = GenerationRequest.builder("a cat").size(512, 768).steps(30).cfgScale(6.5).sampler("DPM++ 2M")
                .clipSkip(2).seed(5).build();
        assertEquals("a cat\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 5, Size: 512x768, "
                + "Model: \"v1-5, pruned\", Clip skip: 2", InfoText.format(r, 5, "DPM++ 2M", "Karras", "v1-5, pruned"));
    }
}
