package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class InfoTextTest {
    @Test
    void a1111ParametersAreReadBackIncludingOldCombinedSamplerNames() {
        InfoText.Parsed p = InfoText.parse("masterpiece, (a cat:1.2)\nwearing a hat\nNegative prompt: blurry,\nlowres\n"
                + "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3793463217, Size: 512x768, Model hash: 6ce0161689, "
                + "Model: \"v1-5, pruned\", Clip skip: 2, RNG: CPU, Version: v1.6.0");
        assertEquals("masterpiece, (a cat:1.2)\nwearing a hat", p.prompt());
        assertEquals("blurry,\nlowres", p.negativePrompt());
        assertEquals("v1-5, pruned", p.get("Model"));
        GenerationRequest r = InfoText.toRequest(p).build();
        assertEquals(28, r.steps());
        assertEquals("DPM++ 2M", r.sampler());
        assertEquals("Karras", r.scheduler());
        assertEquals(6.5, r.cfgScale());
        assertEquals(3793463217L, r.seed());
        assertEquals(512, r.width());
        assertEquals(768, r.height());
        assertEquals(2, r.clipSkip());
        assertEquals(dev.jdiffusion.samplers.SeededNoise.Generator.TORCH_CPU, r.rng());
        // what jdiffusion writes comes back as the same request
        GenerationRequest mine = GenerationRequest.builder("a, b: c").negativePrompt("x").size(512, 640).steps(12).cfgScale(5)
                .sampler("Euler").scheduler("Exponential").seed(77).clipSkip(2).cfgRescale(0.7).zeroTerminalSnr(true)
                .prediction(dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION).build();
        GenerationRequest back = InfoText.toRequest(InfoText.parse(InfoText.format(mine, 77, "Euler", "Exponential", "m", java.util.Map.of())))
                .build();
        assertEquals(mine, new GenerationRequest(back.prompt(), back.negativePrompt(), back.width(), back.height(), back.steps(),
                back.cfgScale(), back.sampler(), back.scheduler(), back.seed(), 1, 1, back.clipSkip(), mine.rng(),
                mine.emphasis(), null, mine.denoisingStrength(), mine.strengthRule(), false, back.cfgRescale(),
                back.zeroTerminalSnr(), back.prediction(), mine.sdxl(), back.refinerSwitchAt()));
        // a prompt without a parameters line is all prompt
        assertEquals("just words, nothing else", InfoText.parse("just words, nothing else").prompt());
    }

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
                + "Model: \"v1-5, pruned\", Clip skip: 2", InfoText.format(r, 5, "DPM++ 2M", "Karras", "v1-5, pruned", java.util.Map.of()));
    }
}
