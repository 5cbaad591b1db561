package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.PromptEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.samplers.DiffusionModel;
import dev.jdiffusion.samplers.DiscreteDenoiser;
import dev.jdiffusion.samplers.DiscreteSchedule;
import dev.jdiffusion.samplers.SamplerNames;
import dev.jdiffusion.lora.LoraFile;
import dev.jdiffusion.lora.LoraMerge;
import dev.jdiffusion.lora.LoraRuntime;
import dev.jdiffusion.lora.LoraTargets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Stable Diffusion 1.x and 2.x text-to-image and image-to-image over loaded networks: the prompt encoded as
 * A1111 does (chunks, emphasis, clip skip), classifier-free guidance over the UNet as a discrete eps
 * or v denoiser ({@link Family}), any named sampler and schedule, one seeded noise stream per image, the img2img strength
 * rule, VAE decode to 8-bit RGB with A1111's parameters text. Safe to use from several threads: the
 * weights are shared and read-only, every call has its own state.
 */
public final class StableDiffusion implements AutoCloseable {
    /**
     * Called after each sampler step of each run; returning false cancels the request within that step
     * (a {@link dev.jdiffusion.samplers.SamplingCancelledException} ends {@code generate}).
     */
    @FunctionalInterface
    public interface ProgressListener {
        ProgressListener NONE = p -> true;

        boolean onStep(Progress progress);
    }

    private static final float SCALE_FACTOR = Vae.SD_SCALE_FACTOR;
    private final Backend backend;
    private final ClipTokenizer tokenizer;
    private final ClipTextEncoder clip;
    private final UNet unet;
    private final Vae vae;
    private final DiscreteSchedule schedule;
    private final String modelName;
    private AutoCloseable file = () -> { };
    /** All weights by checkpoint name and how to build the text encoder from them (for LoRA); null when built from parts. */
    private Map<String, Tensor> weights;
    private Function<Map<String, Tensor>, ClipTextEncoder> textEncoder;
    private volatile Path loraFolder;
    private volatile LoraTargets targets;
    /** LoRA files read once, with their A1111 short hash, by path. */
    private final Map<Path, CachedLora> loraCache = new ConcurrentHashMap<>();

    private record CachedLora(LoraFile file, String shortHash) {
    }
    private Family family = Family.SD1;

    /**
     * What the families differ in beyond their networks' shapes: what follows a prompt's end token
     * (SD 1.x: more end tokens; SD 2.x: 0), the text encoder layer that conditions (SD 2.x: always the
     * penultimate, as its FrozenOpenCLIPEmbedder does; a larger clip skip still goes deeper), and what
     * the UNet predicts (SD 2.x 768-v models: v).
     */
    public record Family(String name, ClipTokenizer.Padding padding, int clipSkip, DiffusionModel.Parameterization prediction) {
        public static final Family SD1 = new Family("SD 1.x", ClipTokenizer.Padding.END_OF_TEXT, 1,
                DiffusionModel.Parameterization.EPSILON);

        /** SD 2.x with its prediction type (512-base: eps; 768-v: v). */
        public static Family sd2(DiffusionModel.Parameterization prediction) {
            return new Family("SD 2.x", ClipTokenizer.Padding.ZERO, 2, prediction);
        }
    }

    private StableDiffusion(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder clip, UNet unet, Vae vae,
                            DiscreteSchedule schedule, String modelName) {
        this.backend = backend;
        this.tokenizer = tokenizer;
        this.clip = clip;
        this.unet = unet;
        this.vae = vae;
        this.schedule = schedule;
        this.modelName = modelName;
    }

    /**
     * An SD 1.x model from its weights in checkpoint naming ({@code cond_stage_model.}, {@code model.diffusion_model.},
     * {@code first_stage_model.}); {@code textEncoder} builds the text encoder from such a map (also from one
     * with LoRAs merged). Such a model takes LoRA tags in prompts.
     */
    public static StableDiffusion of(Backend backend, ClipTokenizer tokenizer, Map<String, Tensor> weights,
                                     Function<Map<String, Tensor>, ClipTextEncoder> textEncoder, UNet.Config unet,
                                     DiscreteSchedule schedule, String modelName) {
        return of(backend, tokenizer, weights, textEncoder, unet, schedule, modelName, Family.SD1);
    }

    /** As {@link #of(Backend, ClipTokenizer, Map, Function, UNet.Config, DiscreteSchedule, String)}, for a model of {@code family}. */
    public static StableDiffusion of(Backend backend, ClipTokenizer tokenizer, Map<String, Tensor> weights,
                                     Function<Map<String, Tensor>, ClipTextEncoder> textEncoder, UNet.Config unet,
                                     DiscreteSchedule schedule, String modelName, Family family) {
        StableDiffusion sd = of(backend, tokenizer, textEncoder.apply(weights), UNet.load(backend, weights, "model.diffusion_model.",
                unet), Vae.load(backend, weights, "first_stage_model."), schedule, modelName);
        sd.weights = weights;
        sd.textEncoder = textEncoder;
        sd.family = family;
        return sd;
    }

    /** The family the model generates as. */
    public Family family() {
        return family;
    }

    /**
     * Where {@code <lora:name:strength>} tags in prompts find their files ({@code name.safetensors},
     * {@code .pt} or {@code .ckpt}); by default the {@code Lora} folder beside the checkpoint, else its own folder.
     */
    public void setLoraFolder(Path folder) {
        this.loraFolder = folder;
    }

    /** An SD 1.x model from its parts (no LoRA tags); {@code modelName} goes into the images' parameters. */
    public static StableDiffusion of(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder clip, UNet unet, Vae vae,
                                     DiscreteSchedule schedule, String modelName) {
        return new StableDiffusion(backend, tokenizer, clip, unet, vae, schedule, modelName);
    }

    /**
     * Loads an SD 1.x or SD 2.x checkpoint (single file or diffusers folder, any format checkpoint-io
     * reads; weights stay in their stored type) and its tokenizer ({@link ClipTokenizer#find}). SD 2.x
     * predicts eps or v as checkpoint-io's detection says.
     */
    public static StableDiffusion load(Backend backend, java.nio.file.Path checkpoint, java.nio.file.Path tokenizerDir)
            throws java.io.IOException {
        dev.jdiffusion.checkpoint.Checkpoint c = dev.jdiffusion.checkpoint.Checkpoints.open(checkpoint);
        dev.jdiffusion.checkpoint.detect.ModelDetector.ModelInfo info = dev.jdiffusion.checkpoint.detect.ModelDetector.detect(c);
        boolean sd2 = info.family() == dev.jdiffusion.checkpoint.detect.ModelFamily.SD2;
        if (!sd2 && info.family() != dev.jdiffusion.checkpoint.detect.ModelFamily.SD1 || info.inpainting()) {
            c.close();
            throw new IllegalArgumentException(checkpoint + " is a " + info.family() + (info.inpainting() ? " inpainting" : "")
                    + " model; generation supports SD 1.x and SD 2.x text-to-image models so far");
        }
        java.util.Map<String, Tensor> w = new java.util.HashMap<>();
        c.tensors().forEach((k, v) -> {
            if (!k.endsWith("position_ids")) {
                w.put(k, v.toTensor());
            }
        });
        try {
            ClipTokenizer tokenizer = ClipTokenizer.find(checkpoint, tokenizerDir);
            String name = checkpoint.getFileName().toString().replaceFirst("\\.(safetensors|ckpt|pt|bin)$", "");
            StableDiffusion sd;
            if (sd2) {
                // OpenCLIP ViT-H: 64 channels per head
                int heads = w.get("cond_stage_model.model.token_embedding.weight").dim(1) / 64;
                sd = of(backend, tokenizer, w, m -> ClipTextEncoder.load(backend, m, "cond_stage_model.model.", heads,
                                ClipTextEncoder.Activation.GELU), UNet.Config.sd2(), DiscreteSchedule.stableDiffusionFloat32(),
                        name, Family.sd2(info.prediction() == dev.jdiffusion.checkpoint.detect.Prediction.V_PREDICTION
                                ? DiffusionModel.Parameterization.V_PREDICTION : DiffusionModel.Parameterization.EPSILON));
            } else {
                sd = of(backend, tokenizer, w, m -> ClipTextEncoder.load(backend, m,
                                "cond_stage_model.transformer.text_model.", 12, ClipTextEncoder.Activation.QUICK_GELU),
                        UNet.Config.sd1(), DiscreteSchedule.stableDiffusionFloat32(), name);
            }
            sd.file = c;
            Path dir = checkpoint.toAbsolutePath().getParent();
            sd.loraFolder = java.nio.file.Files.isDirectory(dir.resolve("Lora")) ? dir.resolve("Lora") : dir;
            return sd;
        } catch (java.io.IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** Releases the loaded checkpoint (its weights are mapped from the file). */
    @Override
    public void close() throws Exception {
        file.close();
    }

    /** Generates every image of the request (batch count × batch size), in seed order. */
    public List<GeneratedImage> generate(GenerationRequest r, ProgressListener progress) {
        LoraTags.Parsed tagged = LoraTags.parse(r.prompt());
        UNet adaptedUnet = this.unet;
        ClipTextEncoder adaptedClip = this.clip;
        Map<String, String> extra = new LinkedHashMap<>();
        if (!tagged.tags().isEmpty()) {
            if (weights == null) {
                throw new IllegalArgumentException("LoRA tags need a model made from its weights (StableDiffusion.load or of(weights...))");
            }
            List<LoraMerge.Applied> applied = new ArrayList<>();
            List<String> hashes = new ArrayList<>();
            for (LoraTags.Tag t : tagged.tags()) {
                Path file = loraFile(t.name());
                CachedLora lora = loraCache.computeIfAbsent(file, f -> new CachedLora(readLora(f), shortHash(f)));
                applied.add(new LoraMerge.Applied(lora.file(), t.unetStrength(), t.textEncoderStrength()));
                hashes.add(t.name() + ": " + lora.shortHash());
            }
            LoraTargets targets = loraTargets();
            adaptedUnet = unet.withAdapter(LoraRuntime.of(weights, applied, targets));
            adaptedClip = textEncoder.apply(LoraMerge.merge(weights, applied, targets, LoraTargets.Part.TEXT_ENCODER).weights());
            extra.put("Lora hashes", String.join(", ", hashes));
        }
        UNet unet = adaptedUnet;
        ClipTextEncoder clip = adaptedClip;
        int f = vae.downsamplingFactor();
        if (r.height() % f != 0 || r.width() % f != 0) {
            throw new IllegalArgumentException("width and height must be multiples of " + f + " for this VAE");
        }
        int[] latentShape = {vae.latentChannels(), r.height() / f, r.width() / f};
        int per = latentShape[0] * latentShape[1] * latentShape[2];
        float[] initLatent = null;
        if (r.isImg2Img()) {
            Tensor image = Pixels.toImage(r.initImage(), 1, r.height(), r.width());
            initLatent = backend.scale(vae.encode(image, null).mean(), SCALE_FACTOR).toFloatArray();
        }
        GenerationLoop.Model model = new GenerationLoop.Model() {
            @Override
            public double[] sigmas(SamplerNames.Resolved sampler, String requestedSchedule, int steps) {
                return sampler.sigmas(requestedSchedule, schedule, steps);
            }

            private final PromptEncoder pe = new PromptEncoder(backend, tokenizer, clip, family.padding());
            private final int clipSkip = Math.max(family.clipSkip(), r.clipSkip());
            private final Map<String, Tensor> encoded = new HashMap<>();
            private final Map<List<String>, Tensor> contexts = new HashMap<>();

            @Override
            public double[] denoise(double[] blocks, double sigma, List<String> texts) {
                int b = blocks.length / (texts.size() * per);
                Tensor ctx = contexts.computeIfAbsent(List.copyOf(texts), t -> context(t, b));
                return new DiscreteDenoiser(new UNetModel(unet, ctx, null, latentShape), schedule,
                        family.prediction()).denoise(blocks, sigma);
            }

            /**
             * The cross-attention context of each block's b items: the prompts' conditionings made as
             * long as the longest by repeating their last vector, the negative prompt's and theirs padded
             * with the empty prompt's chunk to the same number of chunks (as A1111 does both).
             */
            private Tensor context(List<String> texts, int b) {
                Tensor[] c = new Tensor[texts.size()];
                for (int i = 0; i < c.length; i++) {
                    c[i] = encoded.computeIfAbsent(texts.get(i), t -> pe.encode(t, clipSkip, r.emphasis()).context());
                }
                int longest = 0;
                for (int i = 1; i < c.length; i++) {
                    longest = Math.max(longest, c[i].dim(1));
                }
                for (int i = 1; i < c.length; i++) {
                    c[i] = repeatLast(c[i], longest);
                }
                Tensor empty = encoded.computeIfAbsent("", t -> pe.encode(t, clipSkip, r.emphasis()).context());
                while (c[0].dim(1) < longest) {
                    c[0] = backend.concat(1, c[0], empty);
                }
                while (longest < c[0].dim(1)) {
                    for (int i = 1; i < c.length; i++) {
                        c[i] = backend.concat(1, c[i], empty);
                    }
                    longest = c[1].dim(1);
                }
                Tensor[] items = new Tensor[c.length * b];
                for (int i = 0; i < items.length; i++) {
                    items[i] = c[i / b];
                }
                return backend.concat(0, items);
            }

            @Override
            public int previewScale() {
                return f;
            }

            @Override
            public byte[] preview(double[] latent, int item) {
                return previewRgb(latent, item * per, latentShape[1], latentShape[2]);
            }

            /** One image at a time: the decoder's activations at full resolution dominate the memory. */
            @Override
            public byte[] pixels(double[] latent, int item) {
                float[] z = new float[per];
                for (int e = 0; e < per; e++) {
                    z[e] = (float) (latent[item * per + e] / SCALE_FACTOR);
                }
                return Pixels.fromImage(vae.decode(Tensor.of(z, 1, latentShape[0], latentShape[1], latentShape[2]), null));
            }
        };
        return GenerationLoop.run(r, tagged.prompt(), model, per, initLatent, modelName, extra, progress);
    }

    private static byte[] previewRgb(double[] latent, int offset, int h, int w) {
        double[] rgb = dev.jdiffusion.core.model.LatentPreview.SD.rgb(latent, offset, h, w);
        byte[] out = new byte[rgb.length];
        for (int i = 0; i < rgb.length; i++) {
            out[i] = Pixels.toByte(rgb[i]);
        }
        return out;
    }

    /** Which weight each LoRA module name changes: built once per model, on the first LoRA tag. */
    private LoraTargets loraTargets() {
        LoraTargets t = targets;
        if (t == null) {
            t = LoraTargets.of(LoraMerge.shapes(weights));
            targets = t;
        }
        return t;
    }

    /** The file of the LoRA a tag names, or an exception that says where it was looked for. */
    private Path loraFile(String name) {
        Path dir = loraFolder;
        if (dir == null) {
            throw new IllegalArgumentException("no LoRA folder set for <lora:" + name + ">");
        }
        for (String ext : new String[] {".safetensors", ".pt", ".ckpt"}) {
            Path p = dir.resolve(name + ext);
            if (java.nio.file.Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new IllegalArgumentException("no LoRA named \"" + name + "\" in " + dir + " (looked for " + name
                + ".safetensors, .pt and .ckpt)");
    }

    private static LoraFile readLora(Path file) {
        try {
            return LoraFile.read(file);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot read the LoRA " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * A1111's short hash of a LoRA file: the first 12 hex digits of the SHA-256 of a safetensors file's
     * tensor data (its header left out, as kohya's "addnet" hash does), of the whole file otherwise.
     */
    static String shortHash(Path file) {
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file)) {
            java.security.MessageDigest sha = java.security.MessageDigest.getInstance("SHA-256");
            long start = 0;
            if (file.getFileName().toString().endsWith(".safetensors")) {
                java.nio.ByteBuffer len = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                ch.read(len, 0);
                start = 8 + len.getLong(0);
            }
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(1 << 20);
            for (long pos = start; ch.read(buf.clear(), pos) > 0; pos += buf.position()) {
                sha.update(buf.flip());
            }
            return java.util.HexFormat.of().formatHex(sha.digest()).substring(0, 12);
        } catch (java.io.IOException | java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("cannot hash " + file + ": " + e.getMessage(), e);
        }
    }

    /** A conditioning [1, T, D] made T' tokens long by repeating its last vector. */
    private Tensor repeatLast(Tensor c, int tokens) {
        int t = c.dim(1);
        if (t == tokens) {
            return c;
        }
        Tensor last = c.reshape(t, c.dim(2)).slice(t - 1, t).reshape(1, 1, c.dim(2));
        Tensor[] parts = new Tensor[1 + tokens - t];
        Arrays.fill(parts, last);
        parts[0] = c;
        return backend.concat(1, parts);
    }
}
