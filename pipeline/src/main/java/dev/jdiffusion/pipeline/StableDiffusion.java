package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.LatentPreview;
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
 * Stable Diffusion 1.x, 2.x and XL text-to-image and image-to-image over loaded networks: the prompt encoded as
 * A1111 does (chunks, emphasis, clip skip; SDXL: both text encoders, the size conditioning),
 * classifier-free guidance over the UNet as a discrete eps or v denoiser ({@link Family}), any named
 * sampler and schedule, one seeded noise stream per image, the img2img strength rule, an optional
 * refiner taking over at a fraction of the schedule, VAE decode to 8-bit RGB with A1111's parameters
 * text. Safe to use from several threads: the weights are shared and read-only, every call has its own state.
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

    /** Builds a model's text encoders from its weights (again after LoRAs are merged into them), in the family's order. */
    @FunctionalInterface
    public interface TextEncoders {
        List<ClipTextEncoder> build(Map<String, Tensor> weights);
    }

    /** Latents wider or taller than this (768 pixels for SD) are decoded and encoded tile by tile. */
    static final int TILE_ABOVE_LATENT = 96;
    private static final int TILE_LATENT = 64;
    private static final int TILE_OVERLAP_LATENT = 16;

    private final Backend backend;
    private final ClipTokenizer tokenizer;
    private final List<ClipTextEncoder> encoders;
    private final UNet unet;
    private final Vae vae;
    private final DiscreteSchedule schedule;
    private final String modelName;
    private final Family family;
    private AutoCloseable file = () -> { };
    /** All weights by checkpoint name and how to build the text encoders from them (for LoRA); null when built from parts. */
    private Map<String, Tensor> weights;
    /** The networks' weights in the backend's memory, uploaded once (on the CPU: the same tensors), by checkpoint name. */
    private Map<String, Tensor> resident;
    private TextEncoders textEncoders;
    private volatile Path loraFolder;
    private volatile LoraTargets targets;
    private volatile boolean cudaGraphs;
    /** LoRA files read once, with their A1111 short hash, by path. */
    private final Map<Path, CachedLora> loraCache = new ConcurrentHashMap<>();

    private record CachedLora(LoraFile file, String shortHash) {
    }

    /**
     * What the families differ in beyond their networks' shapes: how the text encoders condition
     * ({@link Kind}), what follows a prompt's end token in the first encoder (SD 1.x: more end tokens;
     * SD 2.x: 0; SDXL's second encoder always pads with 0), the text encoder layer that conditions
     * counted from the end (SD 2.x and XL: always the penultimate, as their embedders do; a larger clip
     * skip still goes deeper), what the UNet predicts (SD 2.x 768-v models: v), and how many of the
     * text encoder's last layers the file lacks (diffusers saves SD 2.x's without the last one, which
     * conditioning never uses).
     */
    public record Family(String name, Kind kind, ClipTokenizer.Padding padding, int clipSkip,
                         DiffusionModel.Parameterization prediction, int droppedLayers) {
        /**
         * SD: one text encoder through its final norm, no vector input, VAE scale 0.18215. SDXL: CLIP-L
         * and OpenCLIP bigG, their raw hidden states concatenated, bigG's projected pooled output and
         * six size embeddings as the vector input, VAE scale 0.13025. SDXL_REFINER: bigG alone, the
         * vector with the original size, the crop and the aesthetic score.
         */
        public enum Kind { SD, SDXL, SDXL_REFINER }

        public static final Family SD1 = new Family("SD 1.x", Kind.SD, ClipTokenizer.Padding.END_OF_TEXT, 1,
                DiffusionModel.Parameterization.EPSILON, 0);
        public static final Family SDXL = new Family("SDXL", Kind.SDXL, ClipTokenizer.Padding.END_OF_TEXT, 2,
                DiffusionModel.Parameterization.EPSILON, 0);
        public static final Family SDXL_REFINER = new Family("SDXL refiner", Kind.SDXL_REFINER, ClipTokenizer.Padding.ZERO,
                2, DiffusionModel.Parameterization.EPSILON, 0);

        public Family {
            if (name == null || kind == null || padding == null || prediction == null || clipSkip < 1 || droppedLayers < 0) {
                throw new IllegalArgumentException("a family needs a name, kind, padding, prediction, clip skip >= 1 and"
                        + " dropped layers >= 0");
            }
        }

        /** SD 2.x with its prediction type (512-base: eps; 768-v: v). */
        public static Family sd2(DiffusionModel.Parameterization prediction) {
            return new Family("SD 2.x", Kind.SD, ClipTokenizer.Padding.ZERO, 2, prediction, 0);
        }

        public Family withPrediction(DiffusionModel.Parameterization p) {
            return new Family(name, kind, padding, clipSkip, p, droppedLayers);
        }

        public Family withDroppedLayers(int n) {
            return new Family(name, kind, padding, clipSkip, prediction, n);
        }

        /** How many text encoders the family has. */
        public int encoders() {
            return kind == Kind.SDXL ? 2 : 1;
        }

        /** The VAE scale factor of the family's latent space. */
        public float vaeScale() {
            return kind == Kind.SD ? Vae.SD_SCALE_FACTOR : Vae.SDXL_SCALE_FACTOR;
        }

        LatentPreview preview() {
            return kind == Kind.SD ? LatentPreview.SD : LatentPreview.SDXL;
        }

        /** The padding of text encoder e. */
        ClipTokenizer.Padding padding(int e) {
            return kind == Kind.SDXL && e == 1 ? ClipTokenizer.Padding.ZERO : padding;
        }
    }

    private StableDiffusion(Backend backend, ClipTokenizer tokenizer, List<ClipTextEncoder> encoders, UNet unet, Vae vae,
                            DiscreteSchedule schedule, String modelName, Family family) {
        if (encoders.size() != family.encoders()) {
            throw new IllegalArgumentException(family.name() + " takes " + family.encoders() + " text encoders, got "
                    + encoders.size());
        }
        if (family.kind() != Family.Kind.SD && !encoders.get(encoders.size() - 1).hasProjection()) {
            throw new IllegalArgumentException(family.name() + "'s OpenCLIP bigG text encoder needs its text_projection");
        }
        this.backend = backend;
        this.tokenizer = tokenizer;
        this.encoders = List.copyOf(encoders);
        this.unet = unet;
        this.vae = vae;
        this.schedule = schedule;
        this.modelName = modelName;
        this.family = family;
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
        return ofEncoders(backend, tokenizer, weights, m -> List.of(textEncoder.apply(m)), unet, schedule, modelName, family);
    }

    /**
     * A model of any family from its weights in checkpoint naming (SDXL: {@code conditioner.embedders.N.}),
     * {@code textEncoders} building its text encoders in the family's order (SDXL: CLIP-L, then bigG).
     * Such a model takes LoRA tags in prompts.
     */
    public static StableDiffusion ofEncoders(Backend backend, ClipTokenizer tokenizer, Map<String, Tensor> weights,
                                             TextEncoders textEncoders, UNet.Config unet, DiscreteSchedule schedule,
                                             String modelName, Family family) {
        Map<String, Tensor> resident = onBackend(backend, weights, Map.of(), Map.of());
        StableDiffusion sd = new StableDiffusion(backend, tokenizer, textEncoders.build(resident),
                UNet.load(backend, resident, "model.diffusion_model.", unet), Vae.load(backend, resident, "first_stage_model."),
                schedule, modelName, family);
        sd.weights = weights;
        sd.resident = resident;
        sd.textEncoders = textEncoders;
        return sd;
    }

    /** The prefixes of the networks' weights (EMA copies and other extras in a file stay behind). */
    private static final String VAE = "first_stage_model.";
    private static final List<String> NETWORKS = List.of("cond_stage_model.", "conditioner.", "model.diffusion_model.", VAE);

    /**
     * A weight map's networks (EMA copies and other extras in a file left out) in the backend's memory:
     * an entry that is the same tensor as in {@code loaded} is its copy in {@code resident}, any other
     * is uploaded now (on the CPU backend: the same tensors). At load both are empty, so every weight
     * goes up once; a LoRA-merged map uploads only the changed entries, which the generation gives
     * back when it ends, each as {@link #weightOnBackend} puts it there.
     */
    private static Map<String, Tensor> onBackend(Backend backend, Map<String, Tensor> m, Map<String, Tensor> loaded,
                                                 Map<String, Tensor> resident) {
        Map<String, Tensor> out = new HashMap<>();
        m.forEach((k, v) -> {
            if (NETWORKS.stream().anyMatch(k::startsWith)) {
                out.put(k, v == loaded.get(k) ? resident.get(k) : weightOnBackend(backend, k, v));
            }
        });
        return out;
    }

    /**
     * A checkpoint weight (by its key in checkpoint naming) in the backend's memory as a model holds
     * it: the text encoders' and the UNet's in the type the backend computes with
     * ({@link Backend#uploadWeight}: on a GPU in autocast F16, as the Python tools load a model in
     * half precision); the VAE's in their stored type, as A1111's {@code --no-half-vae} keeps them,
     * since the SD VAEs overflow F16 in places.
     */
    public static Tensor weightOnBackend(Backend backend, String key, Tensor weight) {
        return key.startsWith(VAE) ? backend.upload(weight) : backend.uploadWeight(weight);
    }

    /** The backend the model runs on. */
    public Backend backend() {
        return backend;
    }

    /** The family the model generates as. */
    public Family family() {
        return family;
    }

    /** The side of the square images the model was trained on: SD 1.x 512, SD 2.x 768 (v) or 512 (eps), SDXL 1024. */
    public int defaultSize() {
        return switch (family.kind()) {
            case SD -> family.prediction() == DiffusionModel.Parameterization.V_PREDICTION ? 768 : 512;
            case SDXL, SDXL_REFINER -> 1024;
        };
    }

    /**
     * Where {@code <lora:name:strength>} tags in prompts find their files ({@code name.safetensors},
     * {@code .pt} or {@code .ckpt}); by default the {@code Lora} folder beside the checkpoint, else its own folder.
     */
    public void setLoraFolder(Path folder) {
        this.loraFolder = folder;
    }

    /**
     * On a CUDA backend, whether each generation records its UNet step as a CUDA graph at the first
     * step and replays it for the others (one launch per step instead of one per kernel; the graph
     * holds a step's device memory until the generation ends). Off by default; no effect on the CPU.
     */
    public void setCudaGraphs(boolean on) {
        this.cudaGraphs = on;
    }

    /** An SD 1.x model from its parts (no LoRA tags); {@code modelName} goes into the images' parameters. */
    public static StableDiffusion of(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder clip, UNet unet, Vae vae,
                                     DiscreteSchedule schedule, String modelName) {
        return new StableDiffusion(backend, tokenizer, List.of(clip), unet, vae, schedule, modelName, Family.SD1);
    }

    /**
     * Loads an SD 1.x, SD 2.x, SDXL or SDXL refiner checkpoint (single file or diffusers folder, any
     * format checkpoint-io reads; weights stay in their stored type) and its tokenizer
     * ({@link ClipTokenizer#find}). SD 2.x predicts eps or v as checkpoint-io's detection says (a
     * request's {@link GenerationRequest#prediction()} overrides it).
     */
    public static StableDiffusion load(Backend backend, java.nio.file.Path checkpoint, java.nio.file.Path tokenizerDir)
            throws java.io.IOException {
        dev.jdiffusion.checkpoint.Checkpoint c = dev.jdiffusion.checkpoint.Checkpoints.open(checkpoint);
        dev.jdiffusion.checkpoint.detect.ModelDetector.ModelInfo info = dev.jdiffusion.checkpoint.detect.ModelDetector.detect(c);
        if (info.inpainting()) {
            c.close();
            throw new IllegalArgumentException(checkpoint + " is a " + info.family()
                    + " inpainting model; generation supports text-to-image models so far");
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
            DiffusionModel.Parameterization prediction = info.prediction() == dev.jdiffusion.checkpoint.detect.Prediction.V_PREDICTION
                    ? DiffusionModel.Parameterization.V_PREDICTION : DiffusionModel.Parameterization.EPSILON;
            DiscreteSchedule sched = DiscreteSchedule.stableDiffusionFloat32();
            StableDiffusion sd = switch (info.family()) {
                case SD1 -> of(backend, tokenizer, w, m -> ClipTextEncoder.load(backend, m,
                                "cond_stage_model.transformer.text_model.", 12, ClipTextEncoder.Activation.QUICK_GELU),
                        UNet.Config.sd1(), sched, name);
                case SD2 -> {
                    // OpenCLIP ViT-H: 64 channels per head, 24 layers; diffusers saves 23 (conditioning never uses the last)
                    String prefix = "cond_stage_model.model.";
                    int heads = heads(w, prefix + "token_embedding.weight");
                    int layers = 0;
                    while (w.containsKey(prefix + "transformer.resblocks." + layers + ".ln_1.weight")) {
                        layers++;
                    }
                    Family f = Family.sd2(prediction);
                    if (heads == 16 && layers == 23) {
                        f = f.withDroppedLayers(1);
                    }
                    yield of(backend, tokenizer, w, m -> ClipTextEncoder.load(backend, m, prefix, heads,
                            ClipTextEncoder.Activation.GELU), UNet.Config.sd2(), sched, name, f);
                }
                case SDXL_BASE -> ofEncoders(backend, tokenizer, w, m -> List.of(
                                ClipTextEncoder.load(backend, m, "conditioner.embedders.0.transformer.text_model.",
                                        heads(m, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"),
                                        ClipTextEncoder.Activation.QUICK_GELU),
                                ClipTextEncoder.load(backend, m, "conditioner.embedders.1.model.",
                                        heads(m, "conditioner.embedders.1.model.token_embedding.weight"),
                                        ClipTextEncoder.Activation.GELU)),
                        UNet.Config.sdxl(), sched, name, Family.SDXL.withPrediction(prediction));
                case SDXL_REFINER -> ofEncoders(backend, tokenizer, w, m -> List.of(
                                ClipTextEncoder.load(backend, m, "conditioner.embedders.0.model.",
                                        heads(m, "conditioner.embedders.0.model.token_embedding.weight"),
                                        ClipTextEncoder.Activation.GELU)),
                        UNet.Config.sdxlRefiner(), sched, name, Family.SDXL_REFINER.withPrediction(prediction));
            };
            sd.file = c;
            Path dir = checkpoint.toAbsolutePath().getParent();
            sd.loraFolder = java.nio.file.Files.isDirectory(dir.resolve("Lora")) ? dir.resolve("Lora") : dir;
            return sd;
        } catch (java.io.IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** CLIP's and OpenCLIP's text towers have 64 channels per head. */
    private static int heads(Map<String, Tensor> w, String tokenEmbedding) {
        Tensor t = w.get(tokenEmbedding);
        if (t == null) {
            throw new IllegalArgumentException("the checkpoint has no " + tokenEmbedding);
        }
        return t.dim(1) / 64;
    }

    /** Releases the loaded checkpoint (its weights are mapped from the file). */
    @Override
    public void close() throws Exception {
        file.close();
    }

    /** Generates every image of the request (batch count × batch size), in seed order. */
    public List<GeneratedImage> generate(GenerationRequest r, ProgressListener progress) {
        return generate(r, null, progress);
    }

    /**
     * Generates every image of the request, the {@code refiner} (null: none) taking over the sampling
     * as A1111 switches: from the first model evaluation whose sigma's nearest timestep t has
     * (999 − t)/1000 ≥ {@link GenerationRequest#refinerSwitchAt()}, the sampler's state carried on. The
     * refiner must share this model's latent space (SDXL with SDXL, SD 1.x/2.x with each other), gets
     * the prompt without LoRA tags, and decodes the result.
     */
    public List<GeneratedImage> generate(GenerationRequest r, StableDiffusion refiner, ProgressListener progress) {
        // what a generation makes in a backend's memory (conditionings, LoRA factors) is given back when it ends
        try (Backend.Scope own = backend.scope();
             Backend.Scope refiners = refiner == null || refiner.backend == backend ? Backend.Scope.NONE : refiner.backend.scope()) {
            return generateScoped(r, refiner, progress);
        }
    }

    private List<GeneratedImage> generateScoped(GenerationRequest r, StableDiffusion refiner, ProgressListener progress) {
        LoraTags.Parsed tagged = LoraTags.parse(r.prompt());
        UNet adaptedUnet = this.unet;
        List<ClipTextEncoder> adaptedEncoders = this.encoders;
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
            adaptedUnet = unet.withAdapter(LoraRuntime.of(weights, applied, targets).on(backend));
            adaptedEncoders = textEncoders.build(onBackend(backend,
                    LoraMerge.merge(weights, applied, targets, LoraTargets.Part.TEXT_ENCODER).weights(), weights, resident));
            extra.put("Lora hashes", String.join(", ", hashes));
        }
        int f = vae.downsamplingFactor();
        if (r.height() % f != 0 || r.width() % f != 0) {
            throw new IllegalArgumentException("width and height must be multiples of " + f + " for this VAE");
        }
        int[] latentShape = {vae.latentChannels(), r.height() / f, r.width() / f};
        int per = latentShape[0] * latentShape[1] * latentShape[2];
        float[] initLatent = null;
        if (r.isImg2Img()) {
            Tensor image = Pixels.toImage(r.initImage(), 1, r.height(), r.width());
            Vae.Posterior posterior = tiled(latentShape) ? vae.encodeTiled(image, TILE_LATENT * f, TILE_OVERLAP_LATENT * f)
                    : vae.encode(image, null);
            initLatent = posterior.mean().toFloatArray();
            for (int i = 0; i < initLatent.length; i++) {
                initLatent[i] *= family.vaeScale();
            }
        }
        checkRefiner(refiner, r, f, latentShape, extra);
        Stage base = new Stage(r, adaptedUnet, adaptedEncoders, latentShape);
        Stage refining = null;
        try {
            GenerationLoop.Model model = base;
            if (refiner != null) {
                refining = refiner.new Stage(r, refiner.unet, refiner.encoders, latentShape);
                model = new Switching(base, refining, schedule(r), r.refinerSwitchAt());
            }
            return GenerationLoop.run(r, tagged.prompt(), model, per, initLatent, modelName, extra, progress);
        } finally {
            base.close();
            if (refining != null) {
                refining.close();
            }
        }
    }

    /** Checks that the refiner shares this model's latent space and names it in the images' parameters. */
    private void checkRefiner(StableDiffusion refiner, GenerationRequest r, int f, int[] latentShape, Map<String, String> extra) {
        if (refiner != null) {
            if (refiner.family.vaeScale() != family.vaeScale() || refiner.vae.latentChannels() != latentShape[0]
                    || refiner.vae.downsamplingFactor() != f) {
                throw new IllegalArgumentException("the refiner (" + refiner.family.name() + ") does not share the latent space of "
                        + family.name());
            }
            extra.put("Refiner", refiner.modelName);
            extra.put("Refiner switch at", InfoText.number(r.refinerSwitchAt()));
        }
    }

    private DiscreteSchedule schedule(GenerationRequest r) {
        return r.zeroTerminalSnr() ? schedule.zeroTerminalSnr() : schedule;
    }

    private static boolean tiled(int[] latentShape) {
        return latentShape[1] > TILE_ABOVE_LATENT || latentShape[2] > TILE_ABOVE_LATENT;
    }

    /** The base model until the switch point, the refiner from there on (A1111's rule, by the sigma of each evaluation). */
    private static final class Switching implements GenerationLoop.Model {
        private final GenerationLoop.Model base;
        private final GenerationLoop.Model refiner;
        private final double[] sigmas;
        private final double switchAt;
        private boolean switched;

        Switching(GenerationLoop.Model base, GenerationLoop.Model refiner, DiscreteSchedule schedule, double switchAt) {
            this.base = base;
            this.refiner = refiner;
            this.sigmas = schedule.sigmas();
            this.switchAt = switchAt;
        }

        @Override
        public double[] sigmas(SamplerNames.Resolved sampler, String requestedSchedule, int steps) {
            return base.sigmas(sampler, requestedSchedule, steps);
        }

        /** Each run of the batch starts on the base model; within a run the refiner, once it took over, stays. */
        @Override
        public void startRun() {
            switched = false;
        }

        @Override
        public double[] denoise(double[] blocks, double sigma, List<String> texts) {
            if (!switched) {
                int t = 0;
                for (int i = 1; i < sigmas.length; i++) {
                    if (Math.abs(sigmas[i] - sigma) < Math.abs(sigmas[t] - sigma)) {
                        t = i;
                    }
                }
                switched = (sigmas.length - 1 - t) / (double) sigmas.length >= switchAt;
            }
            return (switched ? refiner : base).denoise(blocks, sigma, texts);
        }

        @Override
        public int previewScale() {
            return base.previewScale();
        }

        @Override
        public byte[] preview(double[] latent, int item) {
            return base.preview(latent, item);
        }

        @Override
        public byte[] pixels(double[] latent, int item) {
            return refiner.pixels(latent, item);
        }
    }

    /** One model's side of a request: its prompts' conditionings (cached by text), its UNet as a denoiser, its VAE. */
    private final class Stage implements GenerationLoop.Model {
        private final GenerationRequest r;
        private final UNet unet;
        private final int[] latentShape;
        private final int per;
        private final List<PromptEncoder> promptEncoders = new ArrayList<>();
        private final int clipSkip;
        private final DiscreteSchedule schedule;
        private final DiffusionModel.Parameterization prediction;
        private final Map<String, Conditioning> encoded = new HashMap<>();
        private final Map<List<String>, Conditioning> contexts = new HashMap<>();
        /** The UNet step as a CUDA graph (null: kernel by kernel). */
        private final UNetGraph graph;

        /** A prompt's cross-attention context [1, T, D] and (SDXL) its pooled text embedding [1, E]. */
        private record Conditioning(Tensor context, Tensor pooled) {
        }

        Stage(GenerationRequest r, UNet unet, List<ClipTextEncoder> encoders, int[] latentShape) {
            this.r = r;
            this.unet = unet;
            this.latentShape = latentShape;
            this.per = latentShape[0] * latentShape[1] * latentShape[2];
            for (int e = 0; e < encoders.size(); e++) {
                promptEncoders.add(new PromptEncoder(backend, tokenizer, encoders.get(e), family.padding(e),
                        family.kind() == Family.Kind.SD));
            }
            this.clipSkip = Math.max(1, Math.max(family.clipSkip(), r.clipSkip()) - family.droppedLayers());
            this.schedule = StableDiffusion.this.schedule(r);
            this.prediction = r.prediction() != null ? r.prediction() : family.prediction();
            this.graph = cudaGraphs && backend instanceof dev.jdiffusion.cuda.CudaBackend cuda ? new UNetGraph(cuda, unet) : null;
        }

        /** Gives back the device memory of the step's graph. */
        void close() {
            if (graph != null) {
                graph.close();
            }
        }

        @Override
        public double[] sigmas(SamplerNames.Resolved sampler, String requestedSchedule, int steps) {
            return sampler.sigmas(requestedSchedule, schedule, steps);
        }

        @Override
        public double[] denoise(double[] blocks, double sigma, List<String> texts) {
            int b = blocks.length / (texts.size() * per);
            Conditioning c = contexts.computeIfAbsent(List.copyOf(texts), t -> context(t, b));
            return new DiscreteDenoiser(new UNetModel(unet, c.context(), c.pooled(), graph, latentShape), schedule, prediction)
                    .denoise(blocks, sigma);
        }

        /** Every text encoder's conditioning of a prompt, concatenated along the channels; SDXL's pooled output is the last encoder's. */
        private Conditioning encode(String text) {
            Tensor[] parts = new Tensor[promptEncoders.size()];
            Tensor pooled = null;
            for (int e = 0; e < parts.length; e++) {
                PromptEncoder.Encoded enc = promptEncoders.get(e).encode(text, clipSkip, r.emphasis());
                parts[e] = enc.context();
                pooled = enc.pooled();
            }
            Tensor context = parts.length == 1 ? parts[0] : backend.concat(2, parts);
            return new Conditioning(context, family.kind() == Family.Kind.SD ? null : pooled);
        }

        /**
         * The conditioning of each block's b items: the prompts' made as long as the longest by repeating
         * their last vector, the negative prompt's and theirs padded with the empty prompt's chunk to the
         * same number of chunks (as A1111 does both). SDXL, as A1111: an empty negative prompt conditions
         * with zeros (its text embeddings, not its size embeddings), and each item gets its vector input.
         */
        private Conditioning context(List<String> texts, int b) {
            Tensor[] c = new Tensor[texts.size()];
            Tensor[] pooled = new Tensor[texts.size()];
            for (int i = 0; i < c.length; i++) {
                Conditioning e = encoded.computeIfAbsent(texts.get(i), this::encode);
                c[i] = e.context();
                pooled[i] = e.pooled();
                if (i == 0 && family.kind() != Family.Kind.SD && texts.get(0).isEmpty()) {
                    c[i] = backend.zeros(c[i].shape());
                    pooled[i] = backend.zeros(pooled[i].shape());
                }
            }
            int longest = 0;
            for (int i = 1; i < c.length; i++) {
                longest = Math.max(longest, c[i].dim(1));
            }
            for (int i = 1; i < c.length; i++) {
                c[i] = repeatLast(c[i], longest);
            }
            Tensor empty = encoded.computeIfAbsent("", this::encode).context();
            releaseTextEncoderPages();
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
            Tensor[] vectors = family.kind() == Family.Kind.SD ? null : new Tensor[c.length * b];
            for (int i = 0; i < items.length; i++) {
                items[i] = c[i / b];
                if (vectors != null) {
                    vectors[i] = vector(pooled[i / b], i < b);
                }
            }
            return new Conditioning(backend.concat(0, items), vectors == null ? null : backend.concat(0, vectors));
        }

        /**
         * SDXL's vector input of one item: the pooled text embedding, then 256-wide sinusoidal embeddings
         * of the original size (height, width), the crop's top-left corner (top, left) and the target
         * size (base) or the aesthetic score (refiner).
         */
        private Tensor vector(Tensor pooled, boolean negative) {
            GenerationRequest.SdxlConditioning s = r.sdxl();
            float h = r.height();
            float w = r.width();
            float[] values = family.kind() == Family.Kind.SDXL
                    ? new float[] {or(s.originalHeight(), h), or(s.originalWidth(), w), s.cropTop(), s.cropLeft(),
                            or(s.targetHeight(), h), or(s.targetWidth(), w)}
                    : new float[] {or(s.originalHeight(), h), or(s.originalWidth(), w), s.cropTop(), s.cropLeft(),
                            (float) (negative ? s.negativeAestheticScore() : s.aestheticScore())};
            return dev.jdiffusion.core.model.SdxlTextConditioner.vector(backend, pooled, new float[][] {values});
        }

        private static float or(int value, float otherwise) {
            return value == 0 ? otherwise : value;
        }

        @Override
        public int previewScale() {
            return vae.downsamplingFactor();
        }

        @Override
        public byte[] preview(double[] latent, int item) {
            double[] rgb = family.preview().rgb(latent, item * per, latentShape[1], latentShape[2]);
            byte[] out = new byte[rgb.length];
            for (int i = 0; i < rgb.length; i++) {
                out[i] = Pixels.toByte(rgb[i]);
            }
            return out;
        }

        /** One image at a time (tile by tile when large): the decoder's activations at full resolution dominate the memory. */
        @Override
        public byte[] pixels(double[] latent, int item) {
            float[] z = new float[per];
            float scale = family.vaeScale();
            for (int e = 0; e < per; e++) {
                z[e] = (float) (latent[item * per + e] / scale);
            }
            Tensor zt = Tensor.of(z, 1, latentShape[0], latentShape[1], latentShape[2]);
            try (Backend.Scope s = backend.scope()) {
                return Pixels.fromImage(backend.toHost(tiled(latentShape) ? vae.decodeTiled(zt, TILE_LATENT, TILE_OVERLAP_LATENT)
                        : vae.decode(zt, null)));
            }
        }
    }

    /**
     * Gives the resident pages of the text encoders' mapped weights back to the system (madvise
     * DONTNEED; they stay in the page cache and are read again on the next encode), so that sampling
     * holds only the UNet and the VAE resident: for SDXL that is 1.6 GB of its 6.9 GB.
     */
    private void releaseTextEncoderPages() {
        if (weights == null) {
            return;
        }
        for (Map.Entry<String, Tensor> e : weights.entrySet()) {
            if ((e.getKey().startsWith("cond_stage_model.") || e.getKey().startsWith("conditioner."))
                    && e.getValue().storage() instanceof dev.jdiffusion.core.tensor.Storage.Segment seg
                    && seg.segment().isMapped()) {
                seg.segment().unload();
            }
        }
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
