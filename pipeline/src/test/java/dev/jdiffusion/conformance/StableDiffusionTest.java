package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.StableDiffusion;
import dev.jdiffusion.pipeline.StrengthRule;
import dev.jdiffusion.samplers.DiscreteSchedule;
import dev.jdiffusion.samplers.SamplingCancelledException;
import dev.jdiffusion.samplers.SeededNoise;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** The facade on the tiny conformance networks: the reference pictures, batches, threads, cancellation. */
class StableDiffusionTest {

    private static StableDiffusion tiny(Backend cpu, List<AutoCloseable> open) throws IOException {
        Path root = Cases.root();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("pipeline")), "no conformance data at " + root);
        SafetensorsFile clipW = SafetensorsFile.open(root.resolve("clip/sd1-quickgelu-w64-h4-l3/weights.safetensors"));
        SafetensorsFile unetW = SafetensorsFile.open(root.resolve("unet/sd1-tiny/model.safetensors"));
        SafetensorsFile vaeW = SafetensorsFile.open(root.resolve("vae/tiny-ch32-mult12-rb1/weights.safetensors"));
        open.add(clipW);
        open.add(unetW);
        open.add(vaeW);
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(Files.readString(
                root.resolve("unet/sd1-tiny/manifest.json")))).get("unet_config"));
        return StableDiffusion.of(cpu, ClipTokenizer.load(root.resolve("tokenizer")),
                ClipTextEncoder.load(cpu, Cases.tensors(clipW), "cond_stage_model.transformer.text_model.", 4,
                        ClipTextEncoder.Activation.QUICK_GELU),
                UNet.load(cpu, Cases.tensors(unetW), "model.diffusion_model.", cfg),
                Vae.load(cpu, Cases.tensors(vaeW), "first_stage_model."), DiscreteSchedule.stableDiffusion(), "sd1-tiny");
    }

    private static void closeAll(List<AutoCloseable> open) throws Exception {
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    static GenerationRequest.Builder cat() {
        return GenerationRequest.builder("a photo of a cat").negativePrompt("blurry, low quality").size(32, 32).steps(10)
                .cfgScale(7).sampler("Euler a").scheduler("Karras").seed(42).rng(SeededNoise.Generator.TORCH_CPU);
    }

    private static byte[] reference(String kase, String tensor) throws IOException {
        try (SafetensorsFile d = SafetensorsFile.open(Cases.root().resolve("pipeline/" + kase + "/data.safetensors"))) {
            double[] v = d.tensor(tensor).doubles();
            byte[] b = new byte[v.length];
            for (int i = 0; i < v.length; i++) {
                b[i] = (byte) (int) v[i];
            }
            return b;
        }
    }

    private static void closeTo(byte[] want, byte[] got, String what) {
        int differ = 0;
        for (int i = 0; i < want.length; i++) {
            int d = Math.abs((want[i] & 0xFF) - (got[i] & 0xFF));
            assertTrue(d <= 1, what + ": pixel " + i + " off by " + d);
            differ += d == 0 ? 0 : 1;
        }
        assertTrue(differ <= want.length / 100, what + ": " + differ + " pixels differ");
    }

    @Test
    void txt2imgAndImg2imgReproduceTheReferencePictures() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            StableDiffusion sd = tiny(cpu, open);
            List<GeneratedImage> t2i = sd.generate(cat().build(), StableDiffusion.ProgressListener.NONE);
            assertEquals(1, t2i.size());
            closeTo(reference("t2i-euler_a-karras-10", "pixels"), t2i.get(0).rgb(), "txt2img");
            assertEquals("a photo of a cat\nNegative prompt: blurry, low quality\nSteps: 10, Sampler: Euler a, "
                    + "Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 32x32, Model: sd1-tiny, RNG: CPU",
                    t2i.get(0).parameters());
            byte[] init = reference("i2i-a1111-dpmpp_2m-karras-10-s075", "init_pixels");
            GenerationRequest i2i = GenerationRequest.builder("a stained glass window").negativePrompt("blurry").size(32, 32)
                    .steps(10).sampler("DPM++ 2M").scheduler("Karras").seed(99).rng(SeededNoise.Generator.TORCH_CPU)
                    .initImage(init, 0.75).strengthRule(StrengthRule.A1111).build();
            List<GeneratedImage> out = sd.generate(i2i, StableDiffusion.ProgressListener.NONE);
            closeTo(reference("i2i-a1111-dpmpp_2m-karras-10-s075", "pixels"), out.get(0).rgb(), "img2img");
            assertTrue(out.get(0).parameters().contains("Denoising strength: 0.75, Denoising rule: A1111"),
                    out.get(0).parameters());
        } finally {
            closeAll(open);
        }
    }

    @Test
    void anImageDependsOnItsSeedNotOnTheBatchingThreadsOrConcurrency() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2); CpuBackend one = new CpuBackend(1)) {
            StableDiffusion sd = tiny(cpu, open);
            GenerationRequest r = cat().steps(4).seed(7).rng(SeededNoise.Generator.PHILOX).build();
            List<GeneratedImage> together = sd.generate(GenerationRequest.builder(r.prompt()).negativePrompt(r.negativePrompt())
                    .size(32, 32).steps(4).sampler("Euler a").scheduler("Karras").seed(7).batch(2, 2).build(),
                    StableDiffusion.ProgressListener.NONE);
            List<GeneratedImage> apart = sd.generate(GenerationRequest.builder(r.prompt()).negativePrompt(r.negativePrompt())
                    .size(32, 32).steps(4).sampler("Euler a").scheduler("Karras").seed(7).batch(1, 4).build(),
                    StableDiffusion.ProgressListener.NONE);
            assertEquals(4, together.size());
            for (int i = 0; i < 4; i++) {
                assertEquals(7 + i, together.get(i).seed());
                assertArrayEquals(apart.get(i).rgb(), together.get(i).rgb(), "image " + i + " with batch size 2 vs 1");
            }
            StableDiffusion single = tiny(one, open);
            assertArrayEquals(together.get(1).rgb(), single.generate(GenerationRequest.builder(r.prompt())
                    .negativePrompt(r.negativePrompt()).size(32, 32).steps(4).sampler("Euler a").scheduler("Karras").seed(8)
                    .build(), StableDiffusion.ProgressListener.NONE).get(0).rgb(), "1 thread vs 2");
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                Future<List<GeneratedImage>> a = pool.submit(() -> sd.generate(cat().seed(9).build(),
                        StableDiffusion.ProgressListener.NONE));
                Future<List<GeneratedImage>> b = pool.submit(() -> sd.generate(cat().seed(10).build(),
                        StableDiffusion.ProgressListener.NONE));
                assertArrayEquals(sd.generate(cat().seed(9).build(), StableDiffusion.ProgressListener.NONE).get(0).rgb(),
                        a.get().get(0).rgb());
                assertArrayEquals(sd.generate(cat().seed(10).build(), StableDiffusion.ProgressListener.NONE).get(0).rgb(),
                        b.get().get(0).rgb());
            } finally {
                pool.shutdown();
            }
        } finally {
            closeAll(open);
        }
    }

    @Test
    void cancellingStopsWithinAStepAndStrengthZeroReturnsTheInput() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            StableDiffusion sd = tiny(cpu, open);
            int[] seen = {0};
            SamplingCancelledException e = assertThrows(SamplingCancelledException.class, () -> sd.generate(cat().build(),
                    p -> ++seen[0] < 3));
            assertEquals(3, seen[0]);
            assertEquals(2, e.step());
            // strength 0 runs no sampler step: the picture is the input, encoded and decoded
            byte[] init = reference("i2i-a1111-dpmpp_2m-karras-10-s075", "init_pixels");
            List<GeneratedImage> same = sd.generate(cat().initImage(init, 0).build(), p -> {
                throw new AssertionError("no step at strength 0");
            });
            assertEquals(1, same.size());
        } finally {
            closeAll(open);
        }
    }

    @Test
    void timestepSamplersStepThroughTheirOwnGridAndAutomaticIsTheSamplersDefault() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            StableDiffusion sd = tiny(cpu, open);
            DiscreteSchedule schedule = DiscreteSchedule.stableDiffusion();
            Map<String, double[]> grids = Map.of(
                    "UniPC", dev.jdiffusion.samplers.UniPc.a1111Sigmas(schedule, 4, dev.jdiffusion.samplers.UniPc.SkipType.TIME_UNIFORM),
                    "DDIM", schedule.ddimSigmas(4), "PLMS", schedule.ddimSigmas(4),
                    "DPM++ 2M", dev.jdiffusion.samplers.ScheduleNames.sigmas("Karras", schedule, 4, false));
            for (Map.Entry<String, double[]> e : grids.entrySet()) {
                List<Double> seen = new java.util.ArrayList<>();
                List<GeneratedImage> out = sd.generate(cat().steps(4).sampler(e.getKey()).scheduler("Automatic").build(),
                        p -> seen.add(p.sigma()));
                double[] want = java.util.Arrays.copyOf(e.getValue(), 4);
                assertArrayEquals(want, seen.stream().mapToDouble(Double::doubleValue).toArray(), 1e-12, e.getKey());
                assertTrue(out.get(0).parameters().contains("Sampler: " + e.getKey() + ", Schedule type: "
                        + (e.getKey().equals("DPM++ 2M") ? "Karras" : "Automatic") + ","), out.get(0).parameters());
            }
        } finally {
            closeAll(open);
        }
    }

    @Test
    void promptEditingAndCompositionChangeTheConditioningWhereTheySay() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            StableDiffusion sd = tiny(cpu, open);
            GenerationRequest.Builder b = cat().steps(4).sampler("Euler");
            byte[] cat = sd.generate(b.prompt("a photo of a cat").build(), StableDiffusion.ProgressListener.NONE).get(0).rgb();
            byte[] dog = sd.generate(b.prompt("a photo of a dog").build(), StableDiffusion.ProgressListener.NONE).get(0).rgb();
            assertTrue(!java.util.Arrays.equals(cat, dog));
            assertArrayEquals(cat, sd.generate(b.prompt("a photo of a [cat:dog:4]").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), "a switch after the last step never happens");
            assertArrayEquals(dog, sd.generate(b.prompt("a photo of a [cat:dog:0]").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), "a switch at step 0 is there from the start");
            byte[] edited = sd.generate(b.prompt("a photo of a [cat:dog:2]").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb();
            byte[] alternating = sd.generate(b.prompt("a photo of a [cat|dog]").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb();
            assertTrue(!java.util.Arrays.equals(cat, edited) && !java.util.Arrays.equals(dog, edited)
                    && !java.util.Arrays.equals(edited, alternating));
            assertArrayEquals(cat, sd.generate(b.prompt("a photo of a cat AND a photo of a dog :0").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), "AND with weight 0 adds nothing");
            String longPrompt = "a photo of a cat, " + "highly detailed, sharp focus, ".repeat(20);
            List<GeneratedImage> mixed = sd.generate(b.prompt("a photo of a dog AND " + longPrompt + ":0.5").batch(2, 1).build(),
                    StableDiffusion.ProgressListener.NONE);
            assertEquals(2, mixed.size(), "prompts of 1 and 3 chunks guide one batch together");
            assertTrue(!java.util.Arrays.equals(dog, mixed.get(0).rgb()));
        } finally {
            closeAll(open);
        }
    }

    /** The tiny model made from its weight map, so that it takes LoRA tags (the files of lora/sd1-tiny). */
    static StableDiffusion tinyFromWeights(Backend cpu, List<AutoCloseable> open, Map<String, Tensor> extra)
            throws IOException {
        return tinyFromWeights(cpu, open, extra, false);
    }

    /**
     * Rounds a weight map's text-encoder and UNet weights to F16 in place, as a GPU in autocast holds
     * them (the VAE's stay as they are).
     */
    static void roundAsAutocastUploads(Map<String, Tensor> w) {
        w.replaceAll((k, t) -> k.startsWith("first_stage_model.") ? t
                : Tensor.ofHalf(t.toFloatArray(), dev.jdiffusion.core.tensor.DType.F16, t.shape()));
    }

    /** The tiny model's weights in checkpoint naming (text encoder, UNet, VAE), as stored (float32). */
    static Map<String, Tensor> tinyWeights(List<AutoCloseable> open) throws IOException {
        Path root = Cases.root();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("lora")), "no conformance data at " + root);
        Map<String, Tensor> w = new java.util.HashMap<>();
        for (String f : new String[] {"clip/sd1-quickgelu-w64-h4-l3/weights.safetensors", "unet/sd1-tiny/model.safetensors",
                "vae/tiny-ch32-mult12-rb1/weights.safetensors"}) {
            SafetensorsFile file = SafetensorsFile.open(root.resolve(f));
            open.add(file);
            w.putAll(Cases.tensors(file));
        }
        return w;
    }

    /**
     * The tiny model; with {@code f16} the text encoder's and the UNet's weights rounded to F16, as a
     * GPU in autocast holds them (the VAE's stay float32).
     */
    static StableDiffusion tinyFromWeights(Backend cpu, List<AutoCloseable> open, Map<String, Tensor> extra, boolean f16)
            throws IOException {
        Path root = Cases.root();
        Map<String, Tensor> w = tinyWeights(open);
        w.putAll(extra);
        if (f16) {
            roundAsAutocastUploads(w);
        }
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(Files.readString(
                root.resolve("unet/sd1-tiny/manifest.json")))).get("unet_config"));
        StableDiffusion sd = StableDiffusion.of(cpu, ClipTokenizer.load(root.resolve("tokenizer")), w,
                m -> ClipTextEncoder.load(cpu, m, "cond_stage_model.transformer.text_model.", 4,
                        ClipTextEncoder.Activation.QUICK_GELU), cfg, DiscreteSchedule.stableDiffusion(), "sd1-tiny");
        sd.setLoraFolder(root.resolve("lora/sd1-tiny"));
        return sd;
    }

    @Test
    void loraTagsApplyTheirFilesBesideTheWeightsAsMergingWould() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            StableDiffusion sd = tinyFromWeights(cpu, open, Map.of());
            GenerationRequest.Builder b = cat().steps(4).sampler("Euler");
            byte[] plain = sd.generate(b.prompt("a photo of a cat").build(), StableDiffusion.ProgressListener.NONE).get(0).rgb();
            assertArrayEquals(plain, sd.generate(b.prompt("a photo of a cat<lora:lora-kohya:0>").build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), "strength 0 changes nothing");
            GeneratedImage tagged = sd.generate(b.prompt("a photo of a cat<lora:lora-kohya:0.7>").build(),
                    StableDiffusion.ProgressListener.NONE).get(0);
            assertTrue(!java.util.Arrays.equals(plain, tagged.rgb()));
            assertTrue(tagged.parameters().startsWith("a photo of a cat<lora:lora-kohya:0.7>\n"), tagged.parameters());
            assertTrue(tagged.parameters().matches("(?s).*, Lora hashes: \"lora-kohya: [0-9a-f]{12}\"$"), tagged.parameters());
            // the same LoRA merged into the weights beforehand gives the same picture
            Map<String, Tensor> all = new java.util.HashMap<>();
            for (String f : new String[] {"clip/sd1-quickgelu-w64-h4-l3/weights.safetensors", "unet/sd1-tiny/model.safetensors"}) {
                SafetensorsFile file = SafetensorsFile.open(Cases.root().resolve(f));
                open.add(file);
                all.putAll(Cases.tensors(file));
            }
            dev.jdiffusion.lora.LoraFile a = dev.jdiffusion.lora.LoraFile.read(Cases.root().resolve(
                    "lora/sd1-tiny/lora-kohya.safetensors"));
            StableDiffusion merged = tinyFromWeights(cpu, open, dev.jdiffusion.lora.LoraMerge.merge(all,
                    List.of(dev.jdiffusion.lora.LoraMerge.Applied.of(a, 0.7))).weights());
            closeTo(merged.generate(b.prompt("a photo of a cat").build(), StableDiffusion.ProgressListener.NONE).get(0).rgb(),
                    tagged.rgb(), "merged vs beside the weights");
            // two threads, two LoRA settings, one loaded model: the pictures of one thread each
            GenerationRequest stacked = b.prompt("a photo of a cat<lora:lora-kohya:0.7><lora:lora-kohya-b:-0.5>").build();
            byte[] alone = sd.generate(stacked, StableDiffusion.ProgressListener.NONE).get(0).rgb();
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                Future<List<GeneratedImage>> x = pool.submit(() -> sd.generate(stacked, StableDiffusion.ProgressListener.NONE));
                Future<List<GeneratedImage>> y = pool.submit(() -> sd.generate(b.prompt("a photo of a cat<lora:lora-kohya:0.7>")
                        .build(), StableDiffusion.ProgressListener.NONE));
                assertArrayEquals(alone, x.get().get(0).rgb());
                assertArrayEquals(tagged.rgb(), y.get().get(0).rgb());
            } finally {
                pool.shutdown();
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sd.generate(
                    b.prompt("a cat <lora:nowhere:1>").build(), StableDiffusion.ProgressListener.NONE));
            assertTrue(e.getMessage().contains("nowhere") && e.getMessage().contains("lora/sd1-tiny"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> dev.jdiffusion.pipeline.DemoModel.generate(
                    b.prompt("a cat <lora:x:1>").build(), StableDiffusion.ProgressListener.NONE));
        } finally {
            closeAll(open);
        }
    }

    /** A random OpenCLIP text tower in SD 2.x single-file naming: width 96 (the sd2-tiny UNet's context), 3 layers, 6 heads. */
    @Test
    void anSd2ModelPadsWithZeroConditionsOnThePenultimateLayerAndPredictsAsItsFamilySays() throws Exception {
        Path root = Cases.root();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("unet/sd2-tiny")), "no conformance data at " + root);
        try (CpuBackend cpu = new CpuBackend(2);
             SafetensorsFile unetW = SafetensorsFile.open(root.resolve("unet/sd2-tiny/model.safetensors"));
             SafetensorsFile vaeW = SafetensorsFile.open(root.resolve("vae/tiny-ch32-mult12-rb1/weights.safetensors"))) {
            Map<String, Tensor> w = new java.util.HashMap<>(RandomWeights.openClip("cond_stage_model.model.", 96, 3, 0, 3));
            w.putAll(Cases.tensors(unetW));
            w.putAll(Cases.tensors(vaeW));
            UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(Files.readString(
                    root.resolve("unet/sd2-tiny/manifest.json")))).get("unet_config"));
            java.util.function.Function<Map<String, Tensor>, ClipTextEncoder> te = m -> ClipTextEncoder.load(cpu, m,
                    "cond_stage_model.model.", 6, ClipTextEncoder.Activation.GELU);
            ClipTokenizer tok = ClipTokenizer.load(root.resolve("tokenizer"));
            GenerationRequest req = cat().steps(4).sampler("Euler").build();
            StableDiffusion v = StableDiffusion.of(cpu, tok, w, te, cfg, DiscreteSchedule.stableDiffusion(), "sd2-tiny-v",
                    StableDiffusion.Family.sd2(dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION));
            StableDiffusion eps = StableDiffusion.of(cpu, tok, w, te, cfg, DiscreteSchedule.stableDiffusion(), "sd2-tiny-eps",
                    StableDiffusion.Family.sd2(dev.jdiffusion.samplers.DiffusionModel.Parameterization.EPSILON));
            byte[] vImage = v.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb();
            assertArrayEquals(vImage, v.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb(), "deterministic");
            assertTrue(!java.util.Arrays.equals(vImage, eps.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb()),
                    "v and eps read the same UNet output differently");
            assertArrayEquals(vImage, v.generate(cat().steps(4).sampler("Euler").clipSkip(2).build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), "SD 2.x conditions on the penultimate layer anyway");
            assertTrue(!java.util.Arrays.equals(vImage, v.generate(cat().steps(4).sampler("Euler").clipSkip(3).build(),
                    StableDiffusion.ProgressListener.NONE).get(0).rgb()), "a larger clip skip goes deeper");
            // the SD 1.x conventions on the same networks give another picture (end-token padding, last layer)
            StableDiffusion asSd1 = StableDiffusion.of(cpu, tok, w, te, cfg, DiscreteSchedule.stableDiffusion(), "x",
                    new StableDiffusion.Family("test", StableDiffusion.Family.Kind.SD, ClipTokenizer.Padding.END_OF_TEXT, 2,
                            dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION, 0));
            assertTrue(!java.util.Arrays.equals(vImage, asSd1.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb()),
                    "zero padding is used");
            // the request's prediction overrides the family's, and is written down
            List<GeneratedImage> asEps = v.generate(cat().steps(4).sampler("Euler")
                    .prediction(dev.jdiffusion.samplers.DiffusionModel.Parameterization.EPSILON).build(),
                    StableDiffusion.ProgressListener.NONE);
            assertArrayEquals(eps.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb(), asEps.get(0).rgb());
            assertTrue(asEps.get(0).parameters().contains("Prediction: eps"), asEps.get(0).parameters());
            // a text encoder saved without its last layer (diffusers' SD 2.x) conditions as the whole one
            Map<String, Tensor> cut = new java.util.HashMap<>(w);
            cut.keySet().removeIf(k -> k.startsWith("cond_stage_model.model.transformer.resblocks.2."));
            StableDiffusion dropped = StableDiffusion.of(cpu, tok, cut, te, cfg, DiscreteSchedule.stableDiffusion(), "sd2-tiny-v",
                    StableDiffusion.Family.sd2(dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION)
                            .withDroppedLayers(1));
            assertArrayEquals(vImage, dropped.generate(req, StableDiffusion.ProgressListener.NONE).get(0).rgb());
            // zero-terminal SNR and CFG rescale change the picture and are written down as A1111 writes them
            GeneratedImage zt = v.generate(cat().steps(4).sampler("Euler").zeroTerminalSnr(true).cfgRescale(0.7).build(),
                    StableDiffusion.ProgressListener.NONE).get(0);
            assertTrue(zt.parameters().contains("CFG Rescale phi: 0.7, Noise Schedule: Zero Terminal SNR"), zt.parameters());
            assertTrue(!java.util.Arrays.equals(vImage, zt.rgb()));
            GeneratedImage rescaled = v.generate(cat().steps(4).sampler("Euler").cfgRescale(0.7).build(),
                    StableDiffusion.ProgressListener.NONE).get(0);
            assertTrue(!java.util.Arrays.equals(vImage, rescaled.rgb()) && !java.util.Arrays.equals(zt.rgb(), rescaled.rgb()));
        }
    }

    @Test
    void badRequestsAreRejectedByName() {
        assertThrows(IllegalArgumentException.class, () -> cat().size(513, 512).build());
        assertThrows(IllegalArgumentException.class, () -> cat().steps(0).build());
        assertThrows(IllegalArgumentException.class, () -> cat().cfgScale(Double.NaN).build());
        assertThrows(IllegalArgumentException.class, () -> cat().initImage(new byte[3 * 32 * 32], 1.5).build());
        assertThrows(IllegalArgumentException.class, () -> cat().initImage(new byte[10], 0.5).build());
        assertThrows(IllegalArgumentException.class, () -> cat().batch(0, 1).build());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> cat().size(500, 512).build()).getMessage()
                .contains("multiples of 8"));
    }
}
