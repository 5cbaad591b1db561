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
        float[][] values = new float[b][6];
        float[][][] pairs = {originalSize, cropTopLeft, targetSize};
        for (int i = 0; i < b; i++) {
            for (int k = 0; k < 3; k++) {
                if (pairs[k][i].length != 2) {
                    throw new IllegalArgumentException("sizes and crops are pairs, got " + pairs[k][i].length + " values");
                }
                values[i][2 * k] = pairs[k][i][0];
                values[i][2 * k + 1] = pairs[k][i][1];
            }
        }
        return vector(backend, pooled, values);
    }

    /**
     * A vector input [B, E + n·256]: the pooled text embedding, then the 256-wide sinusoidal embedding
     * (cos first) of each of the n scalars of each batch item, in order (the base model's six sizes, the
     * refiner's original size, crop and aesthetic score).
     */
    public static Tensor vector(Backend backend, Tensor pooled, float[][] values) {
        int b = pooled.dim(0);
        if (values.length != b) {
            throw new IllegalArgumentException("one row of conditioning values per batch item (" + b + "), got " + values.length);
        }
        int n = values[0].length;
        Tensor[] parts = new Tensor[1 + n];
        parts[0] = pooled;
        for (int j = 0; j < n; j++) {
            float[] v = new float[b];
            for (int i = 0; i < b; i++) {
                if (values[i].length != n) {
                    throw new IllegalArgumentException("every batch item needs " + n + " conditioning values");
                }
                v[i] = values[i][j];
            }
            parts[1 + j] = backend.timestepEmbedding(v, 256);
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
