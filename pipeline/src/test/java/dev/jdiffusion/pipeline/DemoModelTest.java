package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class DemoModelTest {
    private static double share(byte[] rgb, int r, int g, int b) {
        int plane = rgb.length / 3;
        int n = 0;
        for (int i = 0; i < plane; i++) {
            if (Math.abs((rgb[i] & 0xFF) - r) < 30 && Math.abs((rgb[plane + i] & 0xFF) - g) < 30
                    && Math.abs((rgb[2 * plane + i] & 0xFF) - b) < 30) {
                n++;
            }
        }
        return (double) n / plane;
    }

    @Test
    void thePromptDecidesWhatIsDrawn() {
        GenerationRequest r = GenerationRequest.builder("a red circle on a blue background").size(64, 64).steps(12).seed(1)
                .build();
        byte[] rgb = DemoModel.generate(r, StableDiffusion.ProgressListener.NONE).get(0).rgb();
        double red = share(rgb, 220, 40, 40);
        double blue = share(rgb, 40, 80, 220);
        assertTrue(red > 0.05 && blue > 0.3 && red + blue > 0.9, "red " + red + ", blue " + blue);
        byte[] square = DemoModel.generate(GenerationRequest.builder("a green square on a white background").size(64, 64)
                .steps(12).seed(1).build(), StableDiffusion.ProgressListener.NONE).get(0).rgb();
        assertTrue(share(square, 40, 170, 60) > 0.05 && share(square, 245, 245, 245) > 0.3);
    }

    /**
     * Every sampler name runs end to end on its automatic schedule (A1111's timestep samplers on their
     * own grid) and lands on a picture of the prompt's kind. At CFG 1: the demo's data are a finite set of
     * pictures, whose exact denoiser jumps between them at small sigma, so strong guidance with a few
     * multistep or second-order steps can overshoot into colours no picture has (a real model is smooth).
     * The CFG++ samplers renoise along the unconditional estimate (here: any picture at all), so they get
     * A1111's default scale, 7.
     */
    @Test
    void everySamplerByNameDrawsOnItsAutomaticSchedule() {
        for (String name : dev.jdiffusion.samplers.SamplerNames.names()) {
            double cfg = name.contains("CFG++") || name.contains("cfg_pp") ? 7 : 1;
            GeneratedImage image = DemoModel.generate(GenerationRequest.builder("a red circle on a blue background")
                    .size(64, 64).steps(12).cfgScale(cfg).seed(1).sampler(name).build(),
                    StableDiffusion.ProgressListener.NONE).get(0);
            double blue = share(image.rgb(), 40, 80, 220);
            assertTrue(blue > 0.5, name + ": blue " + blue);
        }
        String dpm = DemoModel.generate(GenerationRequest.builder("x").size(32, 32).steps(4).seed(1).sampler("DPM++ 2M")
                .build(), StableDiffusion.ProgressListener.NONE).get(0).parameters();
        assertTrue(dpm.contains("Sampler: DPM++ 2M, Schedule type: Karras,"), dpm);
        String unipc = DemoModel.generate(GenerationRequest.builder("x").size(32, 32).steps(4).seed(1).sampler("UniPC")
                .scheduler("Karras").build(), StableDiffusion.ProgressListener.NONE).get(0).parameters();
        assertTrue(unipc.contains("Sampler: UniPC, Schedule type: Automatic,"), unipc);
    }

    /** The picture is decided at large sigma: the prompt of the first steps sets the shape and colour. */
    @Test
    void promptEditingSwitchesTheConditioningAtItsStep() {
        GenerationRequest.Builder b = GenerationRequest.builder("").size(64, 64).steps(20).seed(3).sampler("Euler");
        byte[] late = DemoModel.generate(b.prompt("[a red circle:a green square:0.9] on a blue background").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb();
        assertTrue(share(late, 220, 40, 40) > 0.05 && share(late, 40, 170, 60) == 0, "red until step 18");
        byte[] early = DemoModel.generate(b.prompt("[a red circle:a green square:2] on a blue background").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb();
        assertTrue(share(early, 40, 170, 60) > 0.05 && share(early, 220, 40, 40) == 0, "green from step 3");
        byte[] alone = DemoModel.generate(b.prompt("a red circle on a blue background").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb();
        assertArrayEquals(alone, DemoModel.generate(b.prompt("[a red circle:a green square:20] on a blue background").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb(), "a switch at the last step never happens");
        assertArrayEquals(alone, DemoModel.generate(b.prompt("a red circle on a blue background AND a green square:0").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb(), "AND with weight 0 adds nothing");
        byte[] both = DemoModel.generate(b.prompt("a red circle on a blue background AND a green square").build(),
                StableDiffusion.ProgressListener.NONE).get(0).rgb();
        assertTrue(!java.util.Arrays.equals(alone, both), "AND with weight 1 guides towards both");
    }

    @Test
    void thePreviewOfTheLastStepIsTheFinalPictureAtLatentResolution() {
        List<GeneratedImage> last = new java.util.ArrayList<>();
        List<Integer> steps = new java.util.ArrayList<>();
        List<GeneratedImage> out = DemoModel.generate(GenerationRequest.builder("a red circle on a blue background")
                .size(64, 32).steps(10).seed(5).batch(2, 1).sampler("Euler").build(), p -> {
                    steps.add(p.step());
                    assertEquals(2, p.batchSize());
                    last.clear();
                    last.add(p.preview(0));
                    last.add(p.preview(1));
                    assertThrows(IndexOutOfBoundsException.class, () -> p.preview(2));
                    return true;
                });
        assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), steps);
        for (int item = 0; item < 2; item++) {
            GeneratedImage look = last.get(item);
            assertEquals(16, look.width());
            assertEquals(8, look.height());
            assertEquals(5 + item, look.seed());
            byte[] full = out.get(item).rgb();
            // the mean of each 4x4 block of the final picture against the preview's pixel
            int worst = 0;
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < 8; y++) {
                    for (int x = 0; x < 16; x++) {
                        int sum = 0;
                        for (int dy = 0; dy < 4; dy++) {
                            for (int dx = 0; dx < 4; dx++) {
                                sum += full[(c * 32 + 4 * y + dy) * 64 + 4 * x + dx] & 0xFF;
                            }
                        }
                        worst = Math.max(worst, Math.abs(sum / 16 - (look.rgb()[(c * 8 + y) * 16 + x] & 0xFF)));
                    }
                }
            }
            assertTrue(worst < 40, "preview vs final picture: " + worst);
        }
    }

    @Test
    void imagesDependOnTheirSeedAloneAndSayWhatMadeThem() {
        GenerationRequest.Builder b = GenerationRequest.builder("a blue ring").size(32, 32).steps(8).seed(11);
        List<GeneratedImage> batched = DemoModel.generate(b.batch(2, 1).build(), StableDiffusion.ProgressListener.NONE);
        List<GeneratedImage> single = DemoModel.generate(b.batch(1, 2).build(), StableDiffusion.ProgressListener.NONE);
        for (int i = 0; i < 2; i++) {
            assertEquals(11 + i, batched.get(i).seed());
            assertArrayEquals(single.get(i).rgb(), batched.get(i).rgb());
        }
        assertTrue(batched.get(0).parameters().contains("Model: \"jdiffusion demo (procedural pictures"),
                batched.get(0).parameters());
        assertThrows(IllegalArgumentException.class, () -> DemoModel.generate(GenerationRequest.builder("x").size(32, 32)
                .scheduler("DDIM").build(), StableDiffusion.ProgressListener.NONE));
    }

    @Test
    void comfyUisOneStreamPerBatchDrawsTheWholeBatchFromTheFirstSeed() {
        GenerationRequest.Builder b = GenerationRequest.builder("a ring").size(32, 32).steps(6).seed(21).sampler("Euler")
                .rng(dev.jdiffusion.samplers.SeededNoise.Generator.TORCH_CPU).batch(2, 1);
        List<GeneratedImage> perImage = DemoModel.generate(b.build(), StableDiffusion.ProgressListener.NONE);
        List<GeneratedImage> perBatch = DemoModel.generate(b.streamPerBatch(true).build(), StableDiffusion.ProgressListener.NONE);
        // torch.randn of the whole batch starts with the first image's own draw; the second image's noise differs
        assertArrayEquals(perImage.get(0).rgb(), perBatch.get(0).rgb());
        double[] one = dev.jdiffusion.samplers.SeededNoise.of(dev.jdiffusion.samplers.SeededNoise.Generator.TORCH_CPU, 21,
                2 * 3 * 8 * 8).next();
        double[] first = dev.jdiffusion.samplers.SeededNoise.of(dev.jdiffusion.samplers.SeededNoise.Generator.TORCH_CPU, 21,
                3 * 8 * 8).next();
        assertArrayEquals(first, java.util.Arrays.copyOf(one, first.length));
        assertEquals(22, perBatch.get(1).seed());
    }

    @Test
    void img2imgAtStrengthZeroKeepsThePicture() {
        byte[] init = new byte[3 * 32 * 32];
        java.util.Arrays.fill(init, 0, 32 * 32, (byte) 200);
        GeneratedImage out = DemoModel.generate(GenerationRequest.builder("a cross").size(32, 32).seed(1)
                .initImage(init, 0).build(), StableDiffusion.ProgressListener.NONE).get(0);
        assertArrayEquals(init, out.rgb());
    }
}
