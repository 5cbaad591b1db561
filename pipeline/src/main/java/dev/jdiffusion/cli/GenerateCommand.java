package dev.jdiffusion.cli;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.PromptEncoder;
import dev.jdiffusion.pipeline.DemoModel;
import dev.jdiffusion.pipeline.Devices;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.InfoText;
import dev.jdiffusion.pipeline.PngWriter;
import dev.jdiffusion.pipeline.Progress;
import dev.jdiffusion.pipeline.StableDiffusion;
import dev.jdiffusion.pipeline.StrengthRule;
import dev.jdiffusion.samplers.SeededNoise;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import javax.imageio.ImageIO;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** txt2img (and img2img with {@code --init-image}; {@link Img2ImgCommand}) with a Stable Diffusion 1.x, 2.x or XL checkpoint, to PNG files. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate images from a prompt with a Stable Diffusion 1.x, 2.x or XL checkpoint (img2img with --init-image).",
            "Without --model it runs the built-in demo model: the exact denoiser of procedurally drawn pictures",
            "(circle, square, triangle, ring, cross in red, green, blue, yellow, orange, purple, white, black),",
            "through the same samplers, CFG, seeds and PNG writer."})
class GenerateCommand implements Callable<Integer> {
    @Option(names = "--model", description = "The checkpoint: .safetensors, .ckpt or a diffusers folder. Without it: "
            + "jdiffusion's built-in demo model (procedural pictures, not Stable Diffusion).")
    Path model;

    @Option(names = "--prompt", description = "What to draw; A1111 syntax: (word:1.2), [word], BREAK, [from:to:when], "
            + "[a|b], AND, <lora:name:strength>.")
    String prompt;

    @Option(names = "--from-png", description = "Regenerate from the parameters in a PNG written by jdiffusion or A1111 "
            + "(prompt, negative prompt, steps, sampler, schedule, CFG scale, seed, size, clip skip, RNG).")
    Path fromPng;

    @Option(names = "--negative-prompt", defaultValue = "", description = "What to keep out of the picture.")
    String negativePrompt;

    @Option(names = "--width", description = "Width in pixels, a multiple of 8 (default: the model's own, 512 for SD 1.x, 768 for SD 2.x v-models, 1024 for SDXL; img2img: the init image's).")
    Integer width;

    @Option(names = "--height", description = "Height in pixels, a multiple of 8 (default: the model's own, 512 for SD 1.x, 768 for SD 2.x v-models, 1024 for SDXL; img2img: the init image's).")
    Integer height;

    @Option(names = "--steps", defaultValue = "20", description = "Sampling steps (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--cfg-scale", defaultValue = "7", description = "How strictly to follow the prompt (default ${DEFAULT-VALUE}).")
    double cfgScale;

    @Option(names = "--seed", defaultValue = "-1", description = "Seed; -1 picks one (reported). Image i gets seed + i.")
    long seed;

    @Option(names = "--sampler", defaultValue = "Euler a", description = "Sampler by A1111 or ComfyUI name (default ${DEFAULT-VALUE}).")
    String sampler;

    @Option(names = "--scheduler", defaultValue = "Automatic", description = "Noise schedule: Automatic (the sampler's own default, as in A1111: Karras for DPM++ 2M, "
            + "Exponential for DPM++ 2M SDE, Uniform for Euler), Uniform, Karras, Exponential, SGM Uniform, Align Your Steps, "
            + "Polyexponential, KL Optimal, Simple, Normal, DDIM, Beta, GITS, or a ComfyUI name (sgm_uniform, ...). DDIM, PLMS and UniPC step through their own timesteps, "
            + "as in A1111 (default ${DEFAULT-VALUE}).")
    String scheduler;

    @Option(names = "--batch-size", defaultValue = "1", description = "Images per model run (default ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--batch-count", defaultValue = "1", description = "Runs (default ${DEFAULT-VALUE}); size 5 x count 4 = 20 images.")
    int batchCount;

    @Option(names = "--clip-skip", defaultValue = "1", description = "Use the text encoder's n-th last layer (default ${DEFAULT-VALUE}).")
    int clipSkip;

    @Option(names = "--rng", defaultValue = "nv", description = "Noise generator: nv (A1111's default, CUDA's), cpu (PyTorch CPU), own.")
    String rng;

    @Option(names = "--noise-per-batch", description = "ComfyUI's noise: one stream for the whole batch (default: one per image, as A1111).")
    boolean noisePerBatch;

    @Option(names = "--emphasis", defaultValue = "original", description = "original, no-norm, none, or comfy (relative to the empty prompt).")
    String emphasis;

    @Option(names = "--init-image", description = "img2img: the picture to start from (PNG, JPEG, BMP or GIF), resized to "
            + "--width x --height when they are given.")
    Path initImage;

    @Option(names = "--denoising-strength", defaultValue = "0.75", description = "img2img: 0 keeps the picture, 1 replaces it (default ${DEFAULT-VALUE}).")
    double strength;

    @Option(names = "--strength-rule", defaultValue = "a1111", description = "img2img schedule cut: a1111, a1111-fixed-steps, comfyui, diffusers.")
    String strengthRule;

    @Option(names = "--device", defaultValue = "cpu", description = "Where the networks run: cpu, cuda, cuda:N or auto (a GPU "
            + "when one can be used, else the CPU). Default ${DEFAULT-VALUE}: the CUDA backend is new and not yet the default.")
    String device;

    @Option(names = "--precision", defaultValue = "autocast", description = "On a GPU: autocast (matrix products, convolutions "
            + "and attention on the tensor cores in the weights' half precision, float32 accumulation) or full (float32 "
            + "throughout, like A1111's --precision full --no-half). The CPU computes in float32 either way. Default ${DEFAULT-VALUE}.")
    String precision;

    @Option(names = "--cuda-graph", description = "On a GPU: record the UNet step as a CUDA graph at the first step and replay "
            + "it for the others (one launch per step).")
    boolean cudaGraph;

    @Option(names = "--lora-dir", description = "Where <lora:name:strength> tags in the prompt find name.safetensors "
            + "(default: the Lora folder beside the model, else the model's folder).")
    Path loraDir;

    @Option(names = "--refiner", description = "A second checkpoint (an SDXL refiner) that takes over the sampling at "
            + "--refiner-switch-at and decodes the picture.")
    Path refiner;

    @Option(names = "--refiner-switch-at", defaultValue = "0.8", description = "The fraction of the schedule after which the "
            + "refiner takes over (default ${DEFAULT-VALUE}, as A1111).")
    double refinerSwitchAt;

    @Option(names = "--cfg-rescale", defaultValue = "0", description = "CFG rescale phi in [0, 1] (0.7 is usual for "
            + "zero-terminal-SNR v-models; default ${DEFAULT-VALUE}: off).")
    double cfgRescale;

    @Option(names = "--zero-terminal-snr", description = "Sample on the zero-terminal-SNR rescaled schedule (for v-models trained on it).")
    boolean zeroTerminalSnr;

    @Option(names = "--prediction", description = "What the model predicts, overriding the detection: eps or v.")
    String prediction;

    @Option(names = "--original-size", description = "SDXL: the original-size conditioning, WxH (default: the image size).")
    String originalSize;

    @Option(names = "--target-size", description = "SDXL: the target-size conditioning, WxH (default: the image size).")
    String targetSize;

    @Option(names = "--crop-top-left", description = "SDXL: the crop conditioning, TOP,LEFT (default 0,0).")
    String cropTopLeft;

    @Option(names = "--aesthetic-score", defaultValue = "6", description = "SDXL refiner: the prompt's aesthetic score (default ${DEFAULT-VALUE}).")
    double aestheticScore;

    @Option(names = "--negative-aesthetic-score", defaultValue = "2.5", description = "SDXL refiner: the negative prompt's "
            + "aesthetic score (default ${DEFAULT-VALUE}).")
    double negativeAestheticScore;

    @Option(names = "--tokenizer", description = "Folder with vocab.json and merges.txt (default: beside the model).")
    Path tokenizer;

    @Option(names = "--output", defaultValue = "output.png", description = "Output file; several images are numbered beside it. Never overwrites.")
    Path output;

    @Option(names = "--preview", description = "Write a cheap preview of the first image of the run (latent colours, "
            + "8 times smaller) to this PNG after every step, replacing it; it is deleted at the end.")
    Path preview;

    @Override
    public Integer call() throws Exception {
        if (model != null && !Files.exists(model)) {
            throw new IllegalArgumentException("no model at " + model);
        }
        if (refiner != null && model == null) {
            throw new IllegalArgumentException("--refiner needs a --model to refine");
        }
        if (refiner != null && !Files.exists(refiner)) {
            throw new IllegalArgumentException("no refiner at " + refiner);
        }
        // the options are checked before a model is read; a size left to the model is filled in after
        GenerationRequest.Builder builder = request(512);
        GenerationRequest checked = builder.build();
        boolean sizeFromModel = fromPng == null && initImage == null && width == null && height == null;
        List<GeneratedImage> images;
        try (Backend backend = Devices.open(device, precision);
             StableDiffusion sd = model == null ? null : StableDiffusion.load(backend, model, tokenizer);
             StableDiffusion ref = refiner == null ? null : StableDiffusion.load(backend, refiner, tokenizer)) {
            GenerationRequest request = sd != null && sizeFromModel
                    ? builder.size(sd.defaultSize(), sd.defaultSize()).build() : checked;
            int total = request.batchCount();
            StableDiffusion.ProgressListener listener = p -> {
                System.err.print("\r" + bar(p, total));
                if (preview != null) {
                    GeneratedImage look = p.preview(0);
                    if (look != null) {
                        try {
                            PngWriter.write(look, preview);
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException("cannot write the preview " + preview, e);
                        }
                    }
                }
                return true;
            };
            if (sd == null) {
                System.out.println("No --model given: using jdiffusion's demo model, the exact denoiser of procedurally drawn"
                        + " pictures (not Stable Diffusion). Pass --model FILE to run a Stable Diffusion checkpoint.");
                images = DemoModel.generate(request, listener);
            } else {
                if (loraDir != null) {
                    sd.setLoraFolder(loraDir);
                }
                sd.setCudaGraphs(cudaGraph);
                if (ref != null) {
                    ref.setCudaGraphs(cudaGraph);
                }
                images = sd.generate(request, ref, listener);
            }
        }
        System.err.println();
        if (preview != null) {
            Files.deleteIfExists(preview);
        }
        for (int i = 0; i < images.size(); i++) {
            Path file = freeName(output, images.size() > 1 ? i + 1 : 0);
            PngWriter.write(images.get(i), file);
            System.out.println(file + " (seed " + images.get(i).seed() + ")");
        }
        return 0;
    }

    /** The request the options describe; {@code defaultSize}: the width and height when none is given. */
    private GenerationRequest.Builder request(int defaultSize) throws IOException {
        GenerationRequest.Builder b;
        if (fromPng != null) {
            String text = PngWriter.parameters(fromPng);
            if (text == null) {
                throw new IllegalArgumentException(fromPng + " carries no generation parameters");
            }
            b = InfoText.toRequest(InfoText.parse(text)).batch(batchSize, batchCount);
        } else {
            if (prompt == null) {
                throw new IllegalArgumentException("give a --prompt (or --from-png FILE)");
            }
            b = GenerationRequest.builder(prompt).negativePrompt(negativePrompt).size(width == null ? defaultSize : width,
                            height == null ? defaultSize : height)
                    .steps(steps).cfgScale(cfgScale).seed(seed).sampler(sampler).scheduler(scheduler)
                    .batch(batchSize, batchCount).clipSkip(clipSkip).rng(SeededNoise.Generator.named(rng))
                    .cfgRescale(cfgRescale).zeroTerminalSnr(zeroTerminalSnr).refinerSwitchAt(refinerSwitchAt);
            if (prediction != null) {
                b.prediction(switch (prediction.strip().toLowerCase(java.util.Locale.ROOT)) {
                    case "eps", "epsilon" -> dev.jdiffusion.samplers.DiffusionModel.Parameterization.EPSILON;
                    case "v", "v-prediction", "v_prediction" -> dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION;
                    default -> throw new IllegalArgumentException("--prediction must be eps or v, got \"" + prediction + "\"");
                });
            }
            int[] original = pair(originalSize, "x", "--original-size", new int[] {0, 0});
            int[] target = pair(targetSize, "x", "--target-size", new int[] {0, 0});
            int[] crop = pair(cropTopLeft, ",", "--crop-top-left", new int[] {0, 0});
            b.sdxl(new GenerationRequest.SdxlConditioning(original[0], original[1], crop[0], crop[1], target[0], target[1],
                    aestheticScore, negativeAestheticScore));
        }
        b.emphasis(PromptEncoder.Emphasis.named(emphasis)).strengthRule(StrengthRule.named(strengthRule)).streamPerBatch(noisePerBatch);
        if (initImage != null) {
            BufferedImage img = readImage(initImage);
            GenerationRequest sized = b.build();
            int w = sized.width();
            int h = sized.height();
            if (fromPng == null && width == null && height == null) {
                w = img.getWidth();
                h = img.getHeight();
                if (w % 8 != 0 || h % 8 != 0) {
                    throw new IllegalArgumentException("the init image is " + w + "x" + h + "; width and height must be "
                            + "multiples of 8: pass --width and --height to resize it");
                }
                b.size(w, h);
            }
            b.initImage(rgb(img, w, h), strength);
        }
        return b;
    }

    /** "AxB" (or "A,B") as two non-negative numbers; {@code otherwise} when not given. */
    static int[] pair(String text, String separator, String option, int[] otherwise) {
        if (text == null) {
            return otherwise;
        }
        String[] parts = text.strip().split(java.util.regex.Pattern.quote(separator));
        try {
            if (parts.length == 2) {
                int a = Integer.parseInt(parts[0].strip());
                int c = Integer.parseInt(parts[1].strip());
                if (a >= 0 && c >= 0) {
                    return new int[] {a, c};
                }
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(option + " takes two non-negative numbers as A" + separator + "B, got \"" + text + "\"");
    }

    /** An image file, or an exception that names it. */
    static BufferedImage readImage(Path file) throws IOException {
        BufferedImage img;
        try {
            img = ImageIO.read(file.toFile());
        } catch (IOException e) {
            throw new IOException("cannot read the init image " + file + ": " + e.getMessage(), e);
        }
        if (img == null) {
            throw new IOException("cannot read the init image " + file + ": not a PNG, JPEG, BMP or GIF");
        }
        return img;
    }

    /**
     * The RGB planes of an image at width x height: as it is when it has that size, else stretched to it
     * (A1111's "Just resize"): area averaging to shrink, bicubic to enlarge.
     */
    static byte[] rgb(BufferedImage img, int width, int height) {
        BufferedImage src = img;
        if (img.getWidth() != width || img.getHeight() != height) {
            src = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
            java.awt.Graphics2D g = src.createGraphics();
            try {
                if (width <= img.getWidth() && height <= img.getHeight()) {
                    g.drawImage(img.getScaledInstance(width, height, java.awt.Image.SCALE_AREA_AVERAGING), 0, 0, null);
                } else {
                    g.setRenderingHint(java.awt.RenderingHints.KEY_INTERPOLATION,
                            java.awt.RenderingHints.VALUE_INTERPOLATION_BICUBIC);
                    g.drawImage(img, 0, 0, width, height, null);
                }
            } finally {
                g.dispose();
            }
        }
        byte[] rgb = new byte[3 * width * height];
        int plane = width * height;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int v = src.getRGB(x, y);
                rgb[y * width + x] = (byte) (v >> 16);
                rgb[plane + y * width + x] = (byte) (v >> 8);
                rgb[2 * plane + y * width + x] = (byte) v;
            }
        }
        return rgb;
    }

    /** "[#########-----------]  45%  run 1/2  step 9/20  sigma 1.2345": the share of all steps of all runs done. */
    static String bar(Progress p, int runs) {
        int done = p.run() * p.total() + p.step() + 1;
        int all = runs * p.total();
        int width = 30;
        int filled = (int) ((long) done * width / all);
        return "[" + "#".repeat(filled) + "-".repeat(width - filled) + "] " + String.format(Locale.ROOT,
                "%3d%%  run %d/%d  step %d/%d  sigma %.4f", (int) (100L * done / all), p.run() + 1, runs, p.step() + 1,
                p.total(), p.sigma());
    }

    static Path freeName(Path output, int number) {
        String name = output.getFileName().toString();
        int dot = name.toLowerCase(Locale.ROOT).endsWith(".png") ? name.length() - 4 : name.length();
        String stem = name.substring(0, dot) + (number > 0 ? String.format("-%03d", number) : "");
        Path dir = output.toAbsolutePath().getParent();
        Path p = dir.resolve(stem + ".png");
        for (int k = 1; Files.exists(p); k++) {
            p = dir.resolve(stem + "-" + k + ".png");
        }
        return p;
    }
}
