package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.SdxlTextConditioner;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.Pixels;
import dev.jdiffusion.pipeline.StableDiffusion;
import dev.jdiffusion.pipeline.UNetModel;
import dev.jdiffusion.samplers.CfgDenoiser;
import dev.jdiffusion.samplers.DiffusionModel;
import dev.jdiffusion.samplers.DiscreteDenoiser;
import dev.jdiffusion.samplers.DiscreteSchedule;
import dev.jdiffusion.samplers.SamplerNames;
import dev.jdiffusion.samplers.SeededNoise;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * A tiny SDXL end to end: random CLIP-L- and bigG-shaped text encoders (32 + 32 = the 64-wide
 * context of {@code unet/sdxl-tiny}, bigG's projection 32 wide = the UNet's pooled input), the
 * conformance SDXL UNet and a tiny VAE, through the facade and piece by piece (the conformance-checked
 * {@link SdxlTextConditioner}, the UNet, the sampler, the VAE at SDXL's scale factor) to the same pixels.
 */
class SdxlTest {
    private static final String CLIP_L = "conditioner.embedders.0.transformer.text_model.";
    private static final String BIG_G = "conditioner.embedders.1.model.";
    private static final int SIZE = 32;

    record Parts(Map<String, Tensor> weights, UNet.Config config, ClipTokenizer tokenizer) {
    }

    static Parts parts(List<AutoCloseable> open) throws Exception {
        Path root = Cases.root();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("unet/sdxl-tiny")), "no conformance data at " + root);
        SafetensorsFile unetW = SafetensorsFile.open(root.resolve("unet/sdxl-tiny/model.safetensors"));
        SafetensorsFile vaeW = SafetensorsFile.open(root.resolve("vae/tiny-ch32-mult12-rb1/weights.safetensors"));
        open.add(unetW);
        open.add(vaeW);
        Map<String, Tensor> w = new HashMap<>();
        w.putAll(RandomWeights.hfClip(CLIP_L, 32, 3, 11));
        w.putAll(RandomWeights.openClip(BIG_G, 32, 3, 32, 12));
        w.putAll(Cases.tensors(unetW));
        w.putAll(Cases.tensors(vaeW));
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(Files.readString(
                root.resolve("unet/sdxl-tiny/manifest.json")))).get("unet_config"));
        return new Parts(w, cfg, ClipTokenizer.load(root.resolve("tokenizer")));
    }

    static List<ClipTextEncoder> encoders(Backend cpu, Map<String, Tensor> m) {
        return List.of(ClipTextEncoder.load(cpu, m, CLIP_L, 2, ClipTextEncoder.Activation.QUICK_GELU),
                ClipTextEncoder.load(cpu, m, BIG_G, 2, ClipTextEncoder.Activation.GELU));
    }

    static GenerationRequest.Builder request() {
        return GenerationRequest.builder("a photo of a cat").size(SIZE, SIZE).steps(3).cfgScale(5).sampler("Euler")
                .seed(7).rng(SeededNoise.Generator.TORCH_CPU);
    }

    private static byte[] rgb(StableDiffusion sd, GenerationRequest r) {
        return sd.generate(r, StableDiffusion.ProgressListener.NONE).get(0).rgb();
    }

    private static void close(List<AutoCloseable> open) throws Exception {
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    @Test
    void theFacadeComposesBothEncodersTheSizeConditioningTheUNetAndTheVaeAsThePiecesDo() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            Parts p = parts(open);
            DiscreteSchedule schedule = DiscreteSchedule.stableDiffusionFloat32();
            StableDiffusion xl = StableDiffusion.ofEncoders(cpu, p.tokenizer(), p.weights(), m -> encoders(cpu, m),
                    p.config(), schedule, "sdxl-tiny", StableDiffusion.Family.SDXL);
            GenerationRequest r = request().build();
            GeneratedImage image = xl.generate(r, StableDiffusion.ProgressListener.NONE).get(0);

            // piece by piece: CLIP-L ids padded with the end token, bigG's with 0; an empty negative prompt is zeros
            List<ClipTextEncoder> enc = encoders(cpu, p.weights());
            int[] ids = p.tokenizer().encode(r.prompt());
            SdxlTextConditioner.Conditioning cond = new SdxlTextConditioner(cpu, enc.get(0), enc.get(1)).encode(
                    new int[][] {ClipTokenizer.pad(ids, ClipTokenizer.Padding.END_OF_TEXT)},
                    new int[][] {ClipTokenizer.pad(ids, ClipTokenizer.Padding.ZERO)});
            Tensor context = cpu.concat(0, Tensor.zeros(cond.crossAttention().shape()), cond.crossAttention());
            float[][] size = {{SIZE, SIZE}, {SIZE, SIZE}};
            Tensor y = SdxlTextConditioner.vector(cpu, cpu.concat(0, Tensor.zeros(cond.pooled().shape()), cond.pooled()),
                    size, new float[][] {{0, 0}, {0, 0}}, size);
            UNet unet = UNet.load(cpu, p.weights(), "model.diffusion_model.", p.config());
            DiscreteDenoiser model = new DiscreteDenoiser(new UNetModel(unet, context, y, 4, SIZE / 2, SIZE / 2), schedule,
                    DiffusionModel.Parameterization.EPSILON);
            SamplerNames.Resolved euler = SamplerNames.resolve("Euler");
            double[] sigmas = euler.sigmas("Automatic", schedule, 3);
            int per = 4 * (SIZE / 2) * (SIZE / 2);
            SeededNoise noise = SeededNoise.of(SeededNoise.Generator.TORCH_CPU, 7, per);
            double[] x = noise.next();
            for (int i = 0; i < per; i++) {
                x[i] *= sigmas[0];
            }
            double[] latent = euler.sampler().sample(new CfgDenoiser(model::denoise, 5), x, sigmas, (s, sn) -> noise.next(),
                    st -> true);
            float[] z = new float[per];
            for (int i = 0; i < per; i++) {
                z[i] = (float) (latent[i] / Vae.SDXL_SCALE_FACTOR);
            }
            Vae vae = Vae.load(cpu, p.weights(), "first_stage_model.");
            byte[] expected = Pixels.fromImage(vae.decode(Tensor.of(z, 1, 4, SIZE / 2, SIZE / 2), null));
            assertArrayEquals(expected, image.rgb(), "the facade's SDXL picture is the pieces' picture");
            assertTrue(image.parameters().contains("Model: sdxl-tiny"), image.parameters());

            // every input matters: a non-empty negative prompt, the size conditioning, the crop
            assertFalse(java.util.Arrays.equals(image.rgb(), rgb(xl, request().negativePrompt("blurry").build())));
            assertFalse(java.util.Arrays.equals(image.rgb(), rgb(xl, request().sdxl(new GenerationRequest.SdxlConditioning(
                    1024, 1024, 0, 0, 0, 0, 6, 2.5)).build())), "original size");
            assertFalse(java.util.Arrays.equals(image.rgb(), rgb(xl, request().sdxl(new GenerationRequest.SdxlConditioning(
                    0, 0, 64, 0, 0, 0, 6, 2.5)).build())), "crop");
            // the explicit defaults are the defaults
            assertArrayEquals(image.rgb(), rgb(xl, request().sdxl(new GenerationRequest.SdxlConditioning(
                    SIZE, SIZE, 0, 0, SIZE, SIZE, 6, 2.5)).build()));
            // the same networks read as SD 1.x conventions would give another picture: SDXL's 0.13025 is used
            assertThrows(IllegalArgumentException.class, () -> StableDiffusion.ofEncoders(cpu, p.tokenizer(), p.weights(),
                    m -> encoders(cpu, m).subList(0, 1), p.config(), schedule, "x", StableDiffusion.Family.SDXL));
        } finally {
            close(open);
        }
    }

    @Test
    void aRefinerTakesOverAtTheSwitchPointAndDecodes() throws Exception {
        List<AutoCloseable> open = new java.util.ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2)) {
            Parts p = parts(open);
            DiscreteSchedule schedule = DiscreteSchedule.stableDiffusionFloat32();
            StableDiffusion base = StableDiffusion.ofEncoders(cpu, p.tokenizer(), p.weights(), m -> encoders(cpu, m),
                    p.config(), schedule, "sdxl-tiny", StableDiffusion.Family.SDXL);
            // a tiny refiner: bigG alone (32 wide, projection 32), adm = 32 + 5·256, its own random UNet
            UNet.Config refinerCfg = new UNet.Config(4, 4, 32, new int[] {2}, 1, new int[] {1, 2}, -1, 16,
                    new int[] {0, 1}, 1, 32, true, 32 + 5 * 256);
            Map<String, Tensor> rw = new HashMap<>(RandomWeights.openClip("conditioner.embedders.0.model.", 32, 3, 32, 21));
            rw.putAll(RandomWeights.unet(refinerCfg, 22));
            p.weights().forEach((k, v) -> {
                if (k.startsWith("first_stage_model.")) {
                    rw.put(k, v);
                }
            });
            StableDiffusion refiner = StableDiffusion.ofEncoders(cpu, p.tokenizer(), rw,
                    m -> List.of(ClipTextEncoder.load(cpu, m, "conditioner.embedders.0.model.", 2,
                            ClipTextEncoder.Activation.GELU)), refinerCfg, schedule, "refiner-tiny",
                    StableDiffusion.Family.SDXL_REFINER);

            GenerationRequest r = request().steps(10).negativePrompt("blurry").build();
            byte[] alone = rgb(base, r);
            GeneratedImage refined = base.generate(r, refiner, StableDiffusion.ProgressListener.NONE).get(0);
            assertFalse(java.util.Arrays.equals(alone, refined.rgb()), "the refiner changes the picture");
            assertTrue(refined.parameters().contains("Refiner: refiner-tiny, Refiner switch at: 0.8"), refined.parameters());
            // switching at the very end changes nothing but the parameters
            GenerationRequest never = request().steps(10).negativePrompt("blurry").refinerSwitchAt(1).build();
            assertArrayEquals(alone, base.generate(never, refiner, StableDiffusion.ProgressListener.NONE).get(0).rgb());
            // the later the switch, the more steps the base model makes: different pictures
            GenerationRequest early = request().steps(10).negativePrompt("blurry").refinerSwitchAt(0.3).build();
            assertFalse(java.util.Arrays.equals(refined.rgb(),
                    base.generate(early, refiner, StableDiffusion.ProgressListener.NONE).get(0).rgb()));
            // the refiner's aesthetic scores are its conditioning. A UNet this small hears its vector input
            // faintly (its 32-channel level has one channel per norm group, which normalises the embedding's
            // per-channel offsets away), so the refiner runs 9 of the 10 steps for this comparison
            GenerationRequest.Builder mostlyRefined = request().steps(10).negativePrompt("blurry").refinerSwitchAt(0.1);
            byte[] defaultScores = base.generate(mostlyRefined.build(), refiner, StableDiffusion.ProgressListener.NONE).get(0).rgb();
            byte[] otherScores = base.generate(mostlyRefined.sdxl(new GenerationRequest.SdxlConditioning(
                    0, 0, 0, 0, 0, 0, 9, 1)).build(), refiner, StableDiffusion.ProgressListener.NONE).get(0).rgb();
            assertFalse(java.util.Arrays.equals(defaultScores, otherScores));
            assertEquals(1, refiner.family().encoders());
            // every run of a batch count starts on the base model: run 2 of seed 7 is run 1 of seed 8
            List<GeneratedImage> two = base.generate(request().steps(10).negativePrompt("blurry").batch(1, 2).build(), refiner,
                    StableDiffusion.ProgressListener.NONE);
            assertArrayEquals(refined.rgb(), two.get(0).rgb());
            assertArrayEquals(base.generate(request().steps(10).negativePrompt("blurry").seed(8).build(), refiner,
                    StableDiffusion.ProgressListener.NONE).get(0).rgb(), two.get(1).rgb());
        } finally {
            close(open);
        }
    }
}
