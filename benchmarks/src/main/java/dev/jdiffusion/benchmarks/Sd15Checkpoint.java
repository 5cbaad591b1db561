package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import dev.jdiffusion.samplers.DiscreteSchedule;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * A full-size Stable Diffusion 1.5 checkpoint with random weights, in the single-file (LDM) layout
 * that {@code v1-5-pruned-emaonly.safetensors} has: the UNet (the parameters {@code UNet.Config.sd1()} lists)
 * under {@code model.diffusion_model.},
 * the VAE under {@code first_stage_model.}, the CLIP ViT-L/14 text encoder under
 * {@code cond_stage_model.transformer.text_model.}, and the DDPM schedule buffers. Weights are
 * uniform in ±1/√fan-in (so a forward pass stays finite), norms are 1, biases small; the schedule
 * buffers hold SD 1.5's real scaled-linear schedule. The same seed gives the same file.
 */
public final class Sd15Checkpoint {
    public static final String UNET = "model.diffusion_model.";
    public static final String VAE = "first_stage_model.";
    public static final String CLIP = "cond_stage_model.transformer.text_model.";
    /** Bumped whenever the generated content changes, so cached files are regenerated. */
    static final String GENERATOR_VERSION = "3";

    private Sd15Checkpoint() {
    }

    /** The layouts the generator writes: SD 1.5, SD 2.1 ({@link Sd21Checkpoint}), SDXL base ({@link SdxlCheckpoint}). */
    enum Layout {
        SD15("sd15"), SD21("sd21"), SDXL("sdxl");

        final String id;

        Layout(String id) {
            this.id = id;
        }
    }

    /** Every tensor name of the checkpoint with its shape, in file order. */
    public static Map<String, long[]> shapes() {
        return shapes(Layout.SD15);
    }

    static Map<String, long[]> shapes(Layout layout) {
        Map<String, long[]> m = new LinkedHashMap<>();
        dev.jdiffusion.core.model.UNet.Config unet = switch (layout) {
            case SD15 -> dev.jdiffusion.core.model.UNet.Config.sd1();
            case SD21 -> dev.jdiffusion.core.model.UNet.Config.sd2();
            case SDXL -> dev.jdiffusion.core.model.UNet.Config.sdxl();
        };
        unet.parameterShapes().forEach((k, v) -> put(m, UNET + k, java.util.Arrays.stream(v).asLongStream().toArray()));
        dev.jdiffusion.core.model.Vae.parameterShapes(128, new int[] {1, 2, 4, 4}, 2, 4)
                .forEach((k, v) -> put(m, VAE + k, java.util.Arrays.stream(v).asLongStream().toArray()));
        switch (layout) {
            case SD15 -> clip(m, CLIP);
            case SD21 -> openClip(m, Sd21Checkpoint.TEXT, 1024, 24);
            case SDXL -> {
                clip(m, SdxlCheckpoint.CLIP_L);
                openClip(m, SdxlCheckpoint.BIG_G, 1280, 32);
            }
        }
        if (layout != Layout.SDXL) {
            // LDM files carry the training schedule; SGM files have none
            for (String b : SCHEDULE_BUFFERS) {
                m.put(b, new long[] {1000});
            }
        }
        return m;
    }

    /** The element type of a tensor when the file is written as {@code floatType}. */
    static StoredType typeOf(String name, StoredType floatType) {
        return name.endsWith("position_ids") ? StoredType.I64 : floatType;
    }

    private static final String[] SCHEDULE_BUFFERS = {"betas", "alphas_cumprod", "alphas_cumprod_prev",
        "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"};

    private static void put(Map<String, long[]> m, String name, long... shape) {
        if (m.put(name, shape) != null) {
            throw new IllegalStateException("duplicate " + name);
        }
    }

    private static void norm(Map<String, long[]> m, String p, long c) {
        put(m, p + ".weight", c);
        put(m, p + ".bias", c);
    }


    private static void linear(Map<String, long[]> m, String p, long out, long in) {
        put(m, p + ".weight", out, in);
        put(m, p + ".bias", out);
    }

    // ---- CLIP ViT-L/14 text encoder: width 768, 12 layers, 49408 tokens, 77 positions

    private static void clip(Map<String, long[]> m, String clip) {
        put(m, clip + "embeddings.position_ids", 1, 77);
        dev.jdiffusion.core.model.ClipTextEncoder.parameterShapes(49408, 768, 12)
                .forEach((k, v) -> put(m, clip + k, java.util.Arrays.stream(v).asLongStream().toArray()));
    }

    // ---- OpenCLIP text towers: ViT-H/14 (SD 2.x, width 1024, 24 layers), bigG/14 (SDXL, 1280, 32); fused q/k/v

    private static void openClip(Map<String, long[]> m, String t, int d, int layers) {
        put(m, t + "positional_embedding", 77, d);
        put(m, t + "text_projection", d, d);
        put(m, t + "token_embedding.weight", 49408, d);
        for (int l = 0; l < layers; l++) {
            String p = t + "transformer.resblocks." + l + ".";
            put(m, p + "attn.in_proj_weight", 3L * d, d);
            put(m, p + "attn.in_proj_bias", 3L * d);
            linear(m, p + "attn.out_proj", d, d);
            norm(m, p + "ln_1", d);
            norm(m, p + "ln_2", d);
            linear(m, p + "mlp.c_fc", 4L * d, d);
            linear(m, p + "mlp.c_proj", d, 4L * d);
        }
        norm(m, t + "ln_final", d);
    }

    /** Number of elements of the tensors whose names start with {@code prefix}, {@code position_ids} excluded. */
    public static long parameters(String prefix) {
        return parameters(prefix, Layout.SD15);
    }

    static long parameters(String prefix, Layout layout) {
        long n = 0;
        for (Map.Entry<String, long[]> e : shapes(layout).entrySet()) {
            if (e.getKey().startsWith(prefix) && !e.getKey().endsWith("position_ids")) {
                long k = 1;
                for (long d : e.getValue()) {
                    k *= d;
                }
                n += k;
            }
        }
        return n;
    }

    /** SD 1.5's training schedule: betas linear in √β from 0.00085 to 0.012 over 1000 steps. */
    static double[] betas() {
        return DiscreteSchedule.scaledLinearBetas(1000, 0.00085, 0.012);
    }

    private static double[] scheduleBuffer(String name) {
        double[] beta = betas();
        int n = beta.length;
        double[] ac = DiscreteSchedule.alphasCumprod(beta);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            double a = ac[i];
            double prev = i == 0 ? 1.0 : ac[i - 1];
            double post = beta[i] * (1 - prev) / (1 - a);
            v[i] = switch (name) {
                case "betas" -> beta[i];
                case "alphas_cumprod" -> a;
                case "alphas_cumprod_prev" -> prev;
                case "sqrt_alphas_cumprod" -> Math.sqrt(a);
                case "sqrt_one_minus_alphas_cumprod" -> Math.sqrt(1 - a);
                case "log_one_minus_alphas_cumprod" -> Math.log(1 - a);
                case "sqrt_recip_alphas_cumprod" -> Math.sqrt(1 / a);
                case "sqrt_recipm1_alphas_cumprod" -> Math.sqrt(1 / a - 1);
                case "posterior_variance" -> post;
                case "posterior_log_variance_clipped" -> Math.log(Math.max(post, 1e-20));
                case "posterior_mean_coef1" -> beta[i] * Math.sqrt(prev) / (1 - a);
                case "posterior_mean_coef2" -> (1 - prev) * Math.sqrt(1 - beta[i]) / (1 - a);
                default -> throw new IllegalArgumentException(name);
            };
        }
        return v;
    }

    private static MemorySegment generate(String name, long[] shape, StoredType type, long seed) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        MemorySegment seg = MemorySegment.ofArray(new byte[Math.toIntExact(n * type.byteSize())]);
        if (type == StoredType.I64) {
            for (long i = 0; i < n; i++) {
                seg.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i * 8, i);
            }
            return seg;
        }
        if (!name.contains(".")) {
            double[] v = scheduleBuffer(name);
            for (int i = 0; i < v.length; i++) {
                type.putFloat(seg, i, (float) v[i]);
            }
            return seg;
        }
        boolean isNorm = shape.length == 1 && name.endsWith(".weight");
        boolean isBias = shape.length == 1 && name.endsWith(".bias");
        long fanIn = 1;
        for (int i = 1; i < shape.length; i++) {
            fanIn *= shape[i];
        }
        float scale = isBias ? 0.01f : isNorm ? 0.05f : (float) (1 / Math.sqrt(Math.max(1, fanIn)));
        float offset = isNorm ? 1f : 0f;
        long elements = n;
        long base = seed * 0x9E3779B97F4A7C15L + name.hashCode();
        int blocks = (int) ((elements + (1 << 16) - 1) >> 16);
        IntStream.range(0, blocks).parallel().forEach(b -> {
            SplittableRandom r = new SplittableRandom(base + b);
            long end = Math.min(elements, ((long) b + 1) << 16);
            for (long i = (long) b << 16; i < end; i++) {
                type.putFloat(seg, i, offset + scale * (2 * r.nextFloat() - 1));
            }
        });
        return seg;
    }

    /**
     * Writes the checkpoint with every floating tensor as {@code floatType} (F32 for the 4 GB file
     * people download, F16 for the 2 GB one).
     */
    public static void write(Path target, StoredType floatType, long seed) throws IOException {
        write(target, floatType, seed, Layout.SD15);
    }

    static void write(Path target, StoredType floatType, long seed, Layout layout) throws IOException {
        Map<String, StoredTensor> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, long[]> e : shapes(layout).entrySet()) {
            String name = e.getKey();
            long[] shape = e.getValue();
            StoredType type = typeOf(name, floatType);
            tensors.put(name, StoredTensor.lazy(type, shape, () -> generate(name, shape, type, seed)));
        }
        SafetensorsWriter.writeStored(target, tensors, Map.of("format", "pt", "jdiffusion.generator",
                generator(layout, seed)));
    }

    private static String generator(Layout layout, long seed) {
        return layout.id + "-random v" + GENERATOR_VERSION + " seed " + seed;
    }

    /**
     * Writes (or finds) the random F16 checkpoint the benchmarks use, seed 1, in
     * {@code jdiffusion.bench.dir} ({@code java.io.tmpdir/jdiffusion-bench} by default), and prints its
     * path: {@code java -cp benchmarks.jar dev.jdiffusion.benchmarks.Sd15Checkpoint [sd15|sd21|sdxl]}
     * (so that another program, PyTorch's side of a comparison, can read the same weights first).
     */
    public static void main(String[] args) throws IOException {
        String id = args.length > 0 ? args[0] : "sd15";
        Layout layout = java.util.Arrays.stream(Layout.values()).filter(l -> l.id.equals(id)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no random checkpoint layout " + id + ": sd15, sd21 or sdxl"));
        System.out.println(cached(CheckpointBenchmark.dir(), StoredType.F16, 1, layout));
    }

    /**
     * The checkpoint at {@code dir/sd15-random-<type>-<seed>.safetensors}, written first if it is
     * missing or was made by another generator version.
     */
    public static Path cached(Path dir, StoredType floatType, long seed) throws IOException {
        return cached(dir, floatType, seed, Layout.SD15);
    }

    static Path cached(Path dir, StoredType floatType, long seed, Layout layout) throws IOException {
        Files.createDirectories(dir);
        Path p = dir.resolve(layout.id + "-random-" + floatType.name().toLowerCase() + "-" + seed + ".safetensors");
        if (Files.exists(p)) {
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                if (generator(layout, seed).equals(f.metadata().get("jdiffusion.generator"))) {
                    return p;
                }
            } catch (IOException | RuntimeException stale) {
                // fall through and regenerate
            }
        }
        write(p, floatType, seed, layout);
        return p;
    }
}
