package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A full-size SDXL base checkpoint with random weights, in the single-file (SGM) layout of
 * {@code sd_xl_base_1.0.safetensors}: the UNet (2.57 G parameters: levels of 320/640/1280 channels
 * with 0/2/10 transformer blocks, a 2048-wide context, the 2816-wide vector input) under
 * {@code model.diffusion_model.}, the VAE under {@code first_stage_model.}, CLIP ViT-L under
 * {@code conditioner.embedders.0.transformer.text_model.} and OpenCLIP bigG (32 layers, 1280 wide,
 * with its text projection) under {@code conditioner.embedders.1.model.}. Weights as in
 * {@link Sd15Checkpoint}; the same seed gives the same file (about 6.9 GB in F16).
 */
public final class SdxlCheckpoint {
    public static final String UNET = Sd15Checkpoint.UNET;
    public static final String CLIP_L = "conditioner.embedders.0.transformer.text_model.";
    public static final String BIG_G = "conditioner.embedders.1.model.";

    private SdxlCheckpoint() {
    }

    /** Every tensor name with its shape, in file order. */
    public static Map<String, long[]> shapes() {
        return Sd15Checkpoint.shapes(Sd15Checkpoint.Layout.SDXL);
    }

    /** Elements of the tensors whose names start with {@code prefix}. */
    public static long parameters(String prefix) {
        return Sd15Checkpoint.parameters(prefix, Sd15Checkpoint.Layout.SDXL);
    }

    /** The checkpoint at {@code dir/sdxl-random-<type>-<seed>.safetensors}, written first when missing or stale. */
    public static Path cached(Path dir, StoredType floatType, long seed) throws IOException {
        return Sd15Checkpoint.cached(dir, floatType, seed, Sd15Checkpoint.Layout.SDXL);
    }
}
