package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;

/**
 * SDXL's text conditioning (generative-models' {@code GeneralConditioner} with its two CLIP
 * embedders): the penultimate layer of CLIP ViT-L (ids padded with the end token) and of OpenCLIP
 * bigG (ids padded with 0), both without the final norm, concatenated along the channels as the
 * UNet's cross-attention context; bigG's projected pooled output opens the UNet's vector input.
 */
public final class SdxlTextConditioner {
    /** The cross-attention context {@code [B, 77, D0 + D1]} and the pooled text embedding {@code [B, E]}. */
    public record Conditioning(Tensor crossAttention, Tensor pooled) {
    }

    private final Backend backend;
    private final ClipTextEncoder first;
    private final ClipTextEncoder second;

    public SdxlTextConditioner(Backend backend, ClipTextEncoder first, ClipTextEncoder second) {
        this.backend = backend;
        this.first = first;
        this.second = second;
    }

    /** The conditioning of B prompts, given each encoder's own 77-id sequences. */
    public Conditioning encode(int[][] firstIds, int[][] secondIds) {
        if (firstIds.length != secondIds.length) {
            throw new IllegalArgumentException("the two encoders got " + firstIds.length + " and " + secondIds.length
                    + " sequences");
        }
        ClipTextEncoder.Output a = first.encode(firstIds);
        ClipTextEncoder.Output b = second.encode(secondIds);
        if (b.projected() == null) {
            throw new IllegalArgumentException("SDXL's second text encoder needs its text_projection");
        }
        return new Conditioning(backend.concat(2, a.penultimate(), b.penultimate()), b.projected());
    }
}
