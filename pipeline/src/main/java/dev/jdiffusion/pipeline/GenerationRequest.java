package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.model.PromptEncoder;
import dev.jdiffusion.samplers.DiffusionModel;
import dev.jdiffusion.samplers.SeededNoise;

/**
 * What to generate, with the knobs A1111 users know. {@code seed} −1 picks a random seed (reported
 * in the results); image i of a request gets seed + i and its own noise stream, so an image does not
 * change with the batch size ({@code streamPerBatch}: ComfyUI's way instead, one stream for the whole
 * batch seeded with the batch's first seed). {@code initImage} (8-bit RGB, NCHW, width × height) makes it img2img.
 * {@code cfgRescale} φ rescales the guidance (Lin et al.; 0: off); {@code zeroTerminalSnr} samples on
 * the zero-terminal-SNR rescaled schedule; {@code prediction} overrides what the model is taken to
 * predict (null: as detected). {@code sdxl} holds SDXL's size, crop and aesthetic-score conditioning;
 * {@code refinerSwitchAt} is the fraction of the steps after which a refiner, when one is given, takes over.
 * Build one with {@link #builder(String)}; every value is checked when it is built.
 */
public record GenerationRequest(String prompt, String negativePrompt, int width, int height, int steps, double cfgScale,
                                String sampler, String scheduler, long seed, int batchSize, int batchCount, int clipSkip,
                                SeededNoise.Generator rng, PromptEncoder.Emphasis emphasis, byte[] initImage,
                                double denoisingStrength, StrengthRule strengthRule, boolean streamPerBatch,
                                double cfgRescale, boolean zeroTerminalSnr, DiffusionModel.Parameterization prediction,
                                SdxlConditioning sdxl, double refinerSwitchAt) {
    /**
     * SDXL's micro-conditioning (generative-models' defaults): the original size and the target size
     * (0: the image's width and height, as A1111 and ComfyUI use), the crop's top-left corner, and the
     * refiner's aesthetic scores for the prompt and the negative prompt (A1111's 6 and 2.5).
     */
    public record SdxlConditioning(int originalWidth, int originalHeight, int cropTop, int cropLeft, int targetWidth,
                                   int targetHeight, double aestheticScore, double negativeAestheticScore) {
        public static final SdxlConditioning DEFAULT = new SdxlConditioning(0, 0, 0, 0, 0, 0, 6.0, 2.5);

        public SdxlConditioning {
            if (originalWidth < 0 || originalHeight < 0 || cropTop < 0 || cropLeft < 0 || targetWidth < 0 || targetHeight < 0) {
                throw new IllegalArgumentException("SDXL sizes and crop coordinates must be >= 0 (0: the image size)");
            }
            if (!Double.isFinite(aestheticScore) || !Double.isFinite(negativeAestheticScore)) {
                throw new IllegalArgumentException("aesthetic scores must be finite numbers");
            }
        }
    }

    public GenerationRequest {
        if (prompt == null || negativePrompt == null) {
            throw new IllegalArgumentException("prompt and negative prompt must not be null (use \"\")");
        }
        if (width < 8 || height < 8 || width % 8 != 0 || height % 8 != 0) {
            throw new IllegalArgumentException("width and height must be positive multiples of 8, got " + width + "x" + height);
        }
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        if (!Double.isFinite(cfgScale)) {
            throw new IllegalArgumentException("CFG scale must be a finite number, got " + cfgScale);
        }
        if (seed < -1) {
            throw new IllegalArgumentException("seed must be -1 (random) or a non-negative number, got " + seed);
        }
        if (batchSize < 1 || batchCount < 1) {
            throw new IllegalArgumentException("batch size and batch count must be at least 1, got " + batchSize + " and "
                    + batchCount);
        }
        if (clipSkip < 1) {
            throw new IllegalArgumentException("clip skip must be at least 1, got " + clipSkip);
        }
        if (sampler == null || scheduler == null || rng == null || emphasis == null || strengthRule == null) {
            throw new IllegalArgumentException("sampler, scheduler, RNG, emphasis and strength rule must be given");
        }
        if (!(denoisingStrength >= 0 && denoisingStrength <= 1)) {
            throw new IllegalArgumentException("denoising strength must be in [0, 1], got " + denoisingStrength);
        }
        if (!(cfgRescale >= 0 && cfgRescale <= 1)) {
            throw new IllegalArgumentException("CFG rescale must be in [0, 1], got " + cfgRescale);
        }
        if (sdxl == null) {
            throw new IllegalArgumentException("SDXL conditioning must be given (SdxlConditioning.DEFAULT)");
        }
        if (!(refinerSwitchAt > 0 && refinerSwitchAt <= 1)) {
            throw new IllegalArgumentException("refiner switch-at must be in (0, 1], got " + refinerSwitchAt);
        }
        if (initImage != null && initImage.length != 3 * width * height) {
            throw new IllegalArgumentException("the init image has " + initImage.length + " bytes; an RGB image of " + width
                    + "x" + height + " has " + 3 * width * height);
        }
    }

    public boolean isImg2Img() {
        return initImage != null;
    }

    /** A request with A1111's defaults: 512×512, 20 steps, CFG 7, Euler a, automatic schedule, random seed. */
    public static Builder builder(String prompt) {
        return new Builder(prompt);
    }

    /** Fluent construction; {@link #build()} validates. */
    public static final class Builder {
        private String prompt;
        private String negativePrompt = "";
        private int width = 512;
        private int height = 512;
        private int steps = 20;
        private double cfgScale = 7;
        private String sampler = "Euler a";
        private String scheduler = "Automatic";
        private long seed = -1;
        private int batchSize = 1;
        private int batchCount = 1;
        private int clipSkip = 1;
        private SeededNoise.Generator rng = SeededNoise.Generator.PHILOX;
        private PromptEncoder.Emphasis emphasis = PromptEncoder.Emphasis.ORIGINAL;
        private byte[] initImage;
        private double denoisingStrength = 0.75;
        private StrengthRule strengthRule = StrengthRule.A1111;
        private boolean streamPerBatch;
        private double cfgRescale;
        private boolean zeroTerminalSnr;
        private DiffusionModel.Parameterization prediction;
        private SdxlConditioning sdxl = SdxlConditioning.DEFAULT;
        private double refinerSwitchAt = 0.8;

        private Builder(String prompt) {
            this.prompt = prompt;
        }

        public Builder prompt(String v) { prompt = v; return this; }
        public Builder negativePrompt(String v) { negativePrompt = v; return this; }
        public Builder size(int w, int h) { width = w; height = h; return this; }
        public Builder steps(int v) { steps = v; return this; }
        public Builder cfgScale(double v) { cfgScale = v; return this; }
        public Builder sampler(String v) { sampler = v; return this; }
        public Builder scheduler(String v) { scheduler = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder batch(int size, int count) { batchSize = size; batchCount = count; return this; }
        public Builder clipSkip(int v) { clipSkip = v; return this; }
        public Builder rng(SeededNoise.Generator v) { rng = v; return this; }
        public Builder emphasis(PromptEncoder.Emphasis v) { emphasis = v; return this; }
        public Builder initImage(byte[] rgb, double strength) { initImage = rgb; denoisingStrength = strength; return this; }
        public Builder strengthRule(StrengthRule v) { strengthRule = v; return this; }
        public Builder streamPerBatch(boolean v) { streamPerBatch = v; return this; }
        public Builder cfgRescale(double v) { cfgRescale = v; return this; }
        public Builder zeroTerminalSnr(boolean v) { zeroTerminalSnr = v; return this; }
        public Builder prediction(DiffusionModel.Parameterization v) { prediction = v; return this; }
        public Builder sdxl(SdxlConditioning v) { sdxl = v; return this; }
        public Builder refinerSwitchAt(double v) { refinerSwitchAt = v; return this; }

        public GenerationRequest build() {
            return new GenerationRequest(prompt, negativePrompt, width, height, steps, cfgScale, sampler, scheduler, seed,
                    batchSize, batchCount, clipSkip, rng, emphasis, initImage, denoisingStrength, strengthRule, streamPerBatch,
                    cfgRescale, zeroTerminalSnr, prediction, sdxl, refinerSwitchAt);
        }
    }
}
