package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.pipeline.Pixels;
import dev.jdiffusion.pipeline.StrengthRule;
import dev.jdiffusion.pipeline.UNetModel;
import dev.jdiffusion.samplers.CfgDenoiser;
import dev.jdiffusion.samplers.DiffusionModel;
import dev.jdiffusion.samplers.DiscreteDenoiser;
import dev.jdiffusion.samplers.DiscreteSchedule;
import dev.jdiffusion.samplers.Sampler;
import dev.jdiffusion.samplers.SamplerNames;
import dev.jdiffusion.samplers.Schedules;
import dev.jdiffusion.samplers.SeededNoise;
import dev.jdiffusion.samplers.Step;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.IntFunction;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case under {@code pipeline/}: a whole tiny SD 1.x txt2img or img2img run composed from the
 * library's pieces — tokenizer, text encoder, CFG over the UNet as a discrete eps denoiser, the named
 * sampler and schedule, PyTorch-CPU-seeded noise, the img2img strength rule, VAE decode, 8-bit
 * pixels — against the float64 reference, step by step. One line per case.
 */
class PipelineConformanceTest {
    private static final Backend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    @TestFactory
    Stream<DynamicTest> everyPipelineCase() throws IOException {
        return Cases.scan("pipeline", PipelineConformanceTest::run);
    }

    private static void run(String rel, Path dir) throws IOException {
        Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(dir.resolve("manifest.json")));
        Map<?, ?> s = (Map<?, ?>) m.get("settings");
        Path root = Cases.root();
        Cases.Compare c = new Cases.Compare(CPU, 1e-4, Double.POSITIVE_INFINITY);
        try (SafetensorsFile data = SafetensorsFile.open(dir.resolve("data.safetensors"));
             SafetensorsFile clipW = SafetensorsFile.open(root.resolve("clip/sd1-quickgelu-w64-h4-l3/weights.safetensors"));
             SafetensorsFile unetW = SafetensorsFile.open(root.resolve("unet/sd1-tiny/model.safetensors"));
             SafetensorsFile vaeW = SafetensorsFile.open(root.resolve("vae/tiny-ch32-mult12-rb1/weights.safetensors"))) {
            ClipTokenizer tokenizer = ClipTokenizer.load(root.resolve("tokenizer"));
            ClipTextEncoder clip = ClipTextEncoder.load(CPU, Cases.tensors(clipW), "cond_stage_model.transformer.text_model.", 4,
                    ClipTextEncoder.Activation.QUICK_GELU);
            UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(Files.readString(
                    root.resolve("unet/sd1-tiny/manifest.json")))).get("unet_config"));
            UNet unet = UNet.load(CPU, Cases.tensors(unetW), "model.diffusion_model.", cfg);
            Vae vae = Vae.load(CPU, Cases.tensors(vaeW), "first_stage_model.");

            // tokens and contexts (prompts tokenized literally, cut at 75 tokens)
            int clipSkip = ((Number) s.get("clip_skip")).intValue();
            String prompt = new String(HexFormat.of().parseHex((String) s.get("prompt_utf8_hex")), java.nio.charset.StandardCharsets.UTF_8);
            String negative = (String) s.get("negative_prompt");
            int[] condIds = tokenizer.inputIds(prompt, ClipTokenizer.Padding.END_OF_TEXT);
            int[] uncondIds = tokenizer.inputIds(negative, ClipTokenizer.Padding.END_OF_TEXT);
            Cases.Compare exact = new Cases.Compare(CPU, 0, 0);
            exact.compare("cond_ids", Tensor.of(floats(condIds), 1, 77), data.tensor("cond_ids"));
            exact.compare("uncond_ids", Tensor.of(floats(uncondIds), 1, 77), data.tensor("uncond_ids"));
            exact.failures.forEach(c::fail);
            ClipTextEncoder.Output out = clip.encode(new int[][] {uncondIds, condIds});
            Tensor context = clip.clipSkip(out, clipSkip);
            Cases.Compare ctx = new Cases.Compare(CPU, 1e-5, Double.POSITIVE_INFINITY);
            float[] both = context.toFloatArray();
            int half = both.length / 2;
            ctx.compare("uncond", Tensor.of(java.util.Arrays.copyOfRange(both, 0, half), 1, 77, 64), data.tensor("uncond"));
            ctx.compare("cond", Tensor.of(java.util.Arrays.copyOfRange(both, half, both.length), 1, 77, 64), data.tensor("cond"));
            ctx.failures.forEach(c::fail);

            // schedule
            DiscreteSchedule schedule = DiscreteSchedule.stableDiffusion();
            String scheduleName = (String) s.get("schedule");
            IntFunction<double[]> sigmasFor = n -> scheduleName.equals("karras")
                    ? Schedules.karras(n, schedule.sigmaMin(), schedule.sigmaMax(), 7) : schedule.uniform(n);
            int steps = ((Number) s.get("steps")).intValue();
            boolean img2img = "pipeline-img2img".equals(m.get("kind"));
            double[] sigmas = img2img ? StrengthRule.named((String) s.get("rule")).sigmas(sigmasFor, steps,
                    ((Number) s.get("denoising_strength")).doubleValue()) : sigmasFor.apply(steps);
            compareElementwise(c, "sigmas", sigmas, data.tensor("sigmas").doubles(), 1e-5);

            // the start latent: noise from PyTorch's CPU generator (draw 0), img2img on top of the encoded picture
            SeededNoise noise = SeededNoise.of(SeededNoise.Generator.TORCH_CPU, ((Number) s.get("seed")).longValue(), 1024);
            double[] first = noise.next();
            double[] x = new double[1024];
            if (img2img) {
                byte[] init = bytes(data.tensor("init_pixels"));
                Tensor mean = vae.encode(Pixels.toImage(init, 1, 32, 32), null).mean();
                Tensor initLatent = CPU.scale(mean, 0.18215f);
                c.compare("init_latent", initLatent, data.tensor("init_latent"));
                float[] il = initLatent.toFloatArray();
                for (int i = 0; i < x.length; i++) {
                    x[i] = il[i] + first[i] * sigmas[0];
                }
            } else {
                for (int i = 0; i < x.length; i++) {
                    x[i] = first[i] * sigmas[0];
                }
            }
            c.compare("x_init", x, data.tensor("x_init"));

            // CFG over the UNet as a discrete eps denoiser, batch of two: [uncond, cond]
            DiscreteDenoiser pair = new DiscreteDenoiser(new UNetModel(unet, context, null, 4, 16, 16), schedule,
                    DiffusionModel.Parameterization.EPSILON);
            CfgDenoiser model = new CfgDenoiser(pair::denoise, ((Number) s.get("cfg_scale")).doubleValue());
            Sampler sampler = SamplerNames.resolve(a1111Name((String) s.get("sampler"))).sampler();
            List<double[]> xs = new ArrayList<>();
            double[] latent = sampler.sample(model, x, sigmas, noise, (Step st) -> xs.add(st.x().clone()));
            double[] want = data.tensor("x_steps").doubles();
            for (int i = 0; i < xs.size(); i++) {
                c.compare("x_steps[" + i + "]", xs.get(i), java.util.Arrays.copyOfRange(want, i * 1024, (i + 1) * 1024));
            }
            c.compare("latent", latent, data.tensor("latent"));

            // decode and pixels
            float[] lf = new float[latent.length];
            for (int i = 0; i < lf.length; i++) {
                lf[i] = (float) (latent[i] / 0.18215);
            }
            Tensor image = vae.decode(Tensor.of(lf, 1, 4, 16, 16), null);
            Cases.Compare img = new Cases.Compare(CPU, 1e-4, 2e-3);
            img.compare("image", image, data.tensor("image"));
            img.failures.forEach(c::fail);
            byte[] pixels = Pixels.fromImage(image);
            byte[] ref = bytes(data.tensor("pixels"));
            int differ = 0;
            int worst = 0;
            for (int i = 0; i < ref.length; i++) {
                int d = Math.abs((pixels[i] & 0xFF) - (ref[i] & 0xFF));
                differ += d == 0 ? 0 : 1;
                worst = Math.max(worst, d);
            }
            if (worst > 1 || differ > ref.length / 100) {
                c.fail("pixels: " + differ + " differ, by up to " + worst);
            }
        }
        assertTrue(c.report(rel), rel + ": " + c.failures);
    }

    private static String a1111Name(String sampler) {
        return switch (sampler) {
            case "euler_ancestral" -> "Euler a";
            case "euler" -> "Euler";
            case "dpmpp_2m" -> "DPM++ 2M";
            case "dpmpp_2m_sde" -> "DPM++ 2M SDE";
            default -> throw new IllegalArgumentException("no A1111 sampler for " + sampler);
        };
    }

    private static void compareElementwise(Cases.Compare c, String name, double[] got, double[] want, double rel) {
        if (got.length != want.length) {
            c.fail(name + ": " + got.length + " values, expected " + want.length);
            return;
        }
        for (int i = 0; i < got.length; i++) {
            if (Math.abs(got[i] - want[i]) > rel * Math.abs(want[i]) || want[i] == 0 && got[i] != 0) {
                c.fail(String.format("%s[%d]: %.9g, expected %.9g", name, i, got[i], want[i]));
                return;
            }
        }
    }

    private static float[] floats(int[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = v[i];
        }
        return f;
    }

    private static byte[] bytes(StoredTensor t) {
        double[] d = t.doubles();
        byte[] b = new byte[d.length];
        for (int i = 0; i < d.length; i++) {
            b[i] = (byte) (int) d[i];
        }
        return b;
    }
}
