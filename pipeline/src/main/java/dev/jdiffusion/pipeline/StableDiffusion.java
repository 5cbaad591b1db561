package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.PromptEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.samplers.CfgDenoiser;
import dev.jdiffusion.samplers.DiffusionModel;
import dev.jdiffusion.samplers.DiscreteDenoiser;
import dev.jdiffusion.samplers.DiscreteSchedule;
import dev.jdiffusion.samplers.GuidedDenoiser;
import dev.jdiffusion.samplers.SamplerNames;
import java.util.Arrays;
import java.util.List;

/**
 * Stable Diffusion 1.x text-to-image and image-to-image over loaded networks: the prompt encoded as
 * A1111 does (chunks, emphasis, clip skip), classifier-free guidance over the UNet as a discrete eps
 * denoiser, any named sampler and schedule, one seeded noise stream per image, the img2img strength
 * rule, VAE decode to 8-bit RGB with A1111's parameters text. Safe to use from several threads: the
 * weights are shared and read-only, every call has its own state.
 */
public final class StableDiffusion implements AutoCloseable {
    /** Called after each sampler step of each run; returning false cancels the request. */
    @FunctionalInterface
    public interface ProgressListener {
        ProgressListener NONE = (run, step, total, sigma) -> true;

        boolean onStep(int run, int step, int total, double sigma);
    }

    private static final float SCALE_FACTOR = Vae.SD_SCALE_FACTOR;
    private final Backend backend;
    private final ClipTokenizer tokenizer;
    private final ClipTextEncoder clip;
    private final UNet unet;
    private final Vae vae;
    private final DiscreteSchedule schedule;
    private final String modelName;
    private AutoCloseable weights = () -> { };

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

    /** An SD 1.x model from its parts; {@code modelName} goes into the images' parameters. */
    public static StableDiffusion of(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder clip, UNet unet, Vae vae,
                                     DiscreteSchedule schedule, String modelName) {
        return new StableDiffusion(backend, tokenizer, clip, unet, vae, schedule, modelName);
    }

    /**
     * Loads an SD 1.x checkpoint (single file or diffusers folder, any format checkpoint-io reads;
     * weights stay in their stored type) and its tokenizer ({@link ClipTokenizer#find}).
     */
    public static StableDiffusion load(Backend backend, java.nio.file.Path checkpoint, java.nio.file.Path tokenizerDir)
            throws java.io.IOException {
        dev.jdiffusion.checkpoint.Checkpoint c = dev.jdiffusion.checkpoint.Checkpoints.open(checkpoint);
        dev.jdiffusion.checkpoint.detect.ModelDetector.ModelInfo info = dev.jdiffusion.checkpoint.detect.ModelDetector.detect(c);
        if (info.family() != dev.jdiffusion.checkpoint.detect.ModelFamily.SD1 || info.inpainting()) {
            c.close();
            throw new IllegalArgumentException(checkpoint + " is a " + info.family() + (info.inpainting() ? " inpainting" : "")
                    + " model; generation supports SD 1.x text-to-image models so far");
        }
        java.util.Map<String, Tensor> w = new java.util.HashMap<>();
        c.tensors().forEach((k, v) -> {
            if (!k.endsWith("position_ids")) {
                w.put(k, v.toTensor());
            }
        });
        try {
            ClipTokenizer tokenizer = ClipTokenizer.find(checkpoint, tokenizerDir);
            StableDiffusion sd = of(backend, tokenizer, ClipTextEncoder.load(backend, w, "cond_stage_model.transformer.text_model.", 12,
                        ClipTextEncoder.Activation.QUICK_GELU), UNet.load(backend, w, "model.diffusion_model.", UNet.Config.sd1()),
                    Vae.load(backend, w, "first_stage_model."), DiscreteSchedule.stableDiffusionFloat32(),
                    checkpoint.getFileName().toString().replaceFirst("\\.(safetensors|ckpt|pt|bin)$", ""));
            sd.weights = c;
            return sd;
        } catch (java.io.IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** Releases the loaded checkpoint (its weights are mapped from the file). */
    @Override
    public void close() throws Exception {
        weights.close();
    }

    /** Generates every image of the request (batch count × batch size), in seed order. */
    public List<GeneratedImage> generate(GenerationRequest r, ProgressListener progress) {
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

            @Override
            public GuidedDenoiser denoiser(int b, double cfgScale) {
                Tensor[] contexts = contexts(r);
                Tensor ctx = backend.concat(0, repeat(contexts[0], b), repeat(contexts[1], b));
                DiscreteDenoiser pair = new DiscreteDenoiser(new UNetModel(unet, ctx, null, latentShape), schedule,
                        DiffusionModel.Parameterization.EPSILON);
                return new CfgDenoiser(pair::denoise, cfgScale);
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
        return GenerationLoop.run(r, model, per, initLatent, modelName, progress);
    }

    /**
     * The negative prompt's and the prompt's conditioning [1, 77·k, D], the shorter padded with the
     * empty prompt's chunk so both have the same number of chunks (as A1111 pads them).
     */
    private Tensor[] contexts(GenerationRequest r) {
        PromptEncoder pe = new PromptEncoder(backend, tokenizer, clip, ClipTokenizer.Padding.END_OF_TEXT);
        Tensor uncond = pe.encode(r.negativePrompt(), r.clipSkip(), r.emphasis()).context();
        Tensor cond = pe.encode(r.prompt(), r.clipSkip(), r.emphasis()).context();
        if (uncond.dim(1) != cond.dim(1)) {
            Tensor empty = pe.encode("", r.clipSkip(), r.emphasis()).context();
            while (uncond.dim(1) < cond.dim(1)) {
                uncond = backend.concat(1, uncond, empty);
            }
            while (cond.dim(1) < uncond.dim(1)) {
                cond = backend.concat(1, cond, empty);
            }
        }
        return new Tensor[] {uncond, cond};
    }

    private Tensor repeat(Tensor t, int n) {
        if (n == 1) {
            return t;
        }
        Tensor[] copies = new Tensor[n];
        Arrays.fill(copies, t);
        return backend.concat(0, copies);
    }
}
