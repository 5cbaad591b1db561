package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A full-size Stable Diffusion 2.1 checkpoint (768-v) with random weights, in the single-file layout
 * of {@code v2-1_768-ema-pruned.safetensors}: the UNet with linear transformer projections and a
 * 1024-wide context under {@code model.diffusion_model.}, the VAE as in SD 1.5, the OpenCLIP ViT-H/14
 * text tower under {@code cond_stage_model.model.}, and the schedule buffers. Like the file people
 * download it does not say that it predicts v; checkpoint-io assumes so for SD 2.x. Weights as in
 * {@link Sd15Checkpoint}; the same seed gives the same file.
 */
public final class Sd21Checkpoint {
    public static final String UNET = Sd15Checkpoint.UNET;
    public static final String TEXT = "cond_stage_model.model.";

    private Sd21Checkpoint() {
    }

    /** Every tensor name with its shape, in file order. */
    public static Map<String, long[]> shapes() {
        return Sd15Checkpoint.shapes(Sd15Checkpoint.Layout.SD21);
    }

    /** Elements of the tensors whose names start with {@code prefix}. */
    public static long parameters(String prefix) {
        return Sd15Checkpoint.parameters(prefix, Sd15Checkpoint.Layout.SD21);
    }

    /** The checkpoint at {@code dir/sd21-random-<type>-<seed>.safetensors}, written first when missing or stale. */
    public static Path cached(Path dir, StoredType floatType, long seed) throws IOException {
        return Sd15Checkpoint.cached(dir, floatType, seed, Sd15Checkpoint.Layout.SD21);
    }
}
