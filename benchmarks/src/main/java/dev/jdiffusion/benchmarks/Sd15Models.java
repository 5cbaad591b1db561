package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The three networks of an SD 1.5-shaped checkpoint (the real key names, e.g. the random one of
 * {@link Sd15Checkpoint}), loaded without copying: F16 weights stay F16 and mapped from the file.
 * On a GPU backend the weights are uploaded once here, as the pipeline uploads them (in autocast the
 * text encoder's and the UNet's as F16, the VAE's as stored). Close it to unmap the weights.
 */
public final class Sd15Models implements AutoCloseable {
    private final Checkpoint checkpoint;
    public final ClipTextEncoder clip;
    public final UNet unet;
    public final Vae vae;

    private Sd15Models(Checkpoint checkpoint, ClipTextEncoder clip, UNet unet, Vae vae) {
        this.checkpoint = checkpoint;
        this.clip = clip;
        this.unet = unet;
        this.vae = vae;
    }

    public static Sd15Models load(Backend backend, Path file) throws IOException {
        Checkpoint c = Checkpoints.open(file);
        try {
            Map<String, Tensor> w = new HashMap<>();
            for (Map.Entry<String, StoredTensor> e : c.tensors().entrySet()) {
                if (!e.getKey().endsWith("position_ids")) {
                    w.put(e.getKey(), StableDiffusion.weightOnBackend(backend, e.getKey(), e.getValue().toTensor()));
                }
            }
            return new Sd15Models(c, ClipTextEncoder.load(backend, w, Sd15Checkpoint.CLIP, 12,
                    ClipTextEncoder.Activation.QUICK_GELU), UNet.load(backend, w, Sd15Checkpoint.UNET, UNet.Config.sd1()),
                    Vae.load(backend, w, Sd15Checkpoint.VAE));
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    @Override
    public void close() {
        try {
            checkpoint.close();
        } catch (Exception e) {
            throw new IllegalStateException("closing the checkpoint failed", e);
        }
    }
}
