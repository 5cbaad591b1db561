package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;

/**
 * Extra output beside a layer's own, computed at run time from the layer's input: how adapters
 * (LoRA) are applied without changing the weights, so one loaded model can serve requests with
 * different adapters at the same time.
 */
@FunctionalInterface
public interface LayerAdapter {
    /**
     * The output to add to that of the layer whose weight is {@code weightKey} (its full name in the
     * weight map) for its input {@code x}, or null when nothing is added. A linear layer's input is
     * [..., in] and the output [..., out]; a convolution's ({@code conv}) input is [B, C, H, W], with
     * the layer's stride and padding.
     */
    Tensor extra(Backend backend, String weightKey, Tensor x, boolean conv, int stride, int padding);
}
