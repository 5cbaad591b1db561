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

    /**
     * SDXL's vector input {@code y} [B, E + 6·256]: the pooled text embedding, then the sinusoidal
     * embeddings (256 each, cos first) of the original size (height, width), the crop's top-left
     * corner (top, left) and the target size (height, width) of each batch item.
     */
    public static Tensor vector(Backend backend, Tensor pooled, float[][] originalSize, float[][] cropTopLeft,
                                float[][] targetSize) {
        int b = pooled.dim(0);
        if (originalSize.length != b || cropTopLeft.length != b || targetSize.length != b) {
            throw new IllegalArgumentException("one size, crop and target size per batch item (" + b + ")");
        }
        Tensor[] parts = new Tensor[7];
        parts[0] = pooled;
        float[][][] pairs = {originalSize, cropTopLeft, targetSize};
        for (int k = 0; k < 3; k++) {
            for (int j = 0; j < 2; j++) {
                float[] v = new float[b];
                for (int i = 0; i < b; i++) {
                    if (pairs[k][i].length != 2) {
                        throw new IllegalArgumentException("sizes and crops are pairs, got " + pairs[k][i].length + " values");
                    }
                    v[i] = pairs[k][i][j];
                }
                parts[1 + 2 * k + j] = backend.timestepEmbedding(v, 256);
            }
        }
        return backend.concat(1, parts);
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
