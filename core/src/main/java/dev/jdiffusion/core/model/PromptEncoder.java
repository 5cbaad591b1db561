package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.core.text.PromptParser;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A prompt to the text conditioning a UNet attends to, the way AUTOMATIC1111 builds it: the prompt
 * syntax parsed ({@link PromptParser}), each 75-token chunk encoded on its own (clip skip applied),
 * the emphasis applied to the encoding, the chunks concatenated along the token axis
 * ({@code [1, 77·chunks, D]}). The pooled output is the first chunk's.
 */
public final class PromptEncoder {
    /** How emphasis weights change the encoding. */
    public enum Emphasis {
        /** A1111 "Original": multiply each token's vector by its weight, then rescale so the mean is unchanged. */
        ORIGINAL,
        /** A1111 "No norm": multiply, no rescaling. */
        NO_NORM,
        /** ComfyUI's: move each weighted token's vector away from the empty prompt's, z_empty + w·(z − z_empty). */
        RELATIVE_TO_EMPTY,
        /** A1111 "None": the prompt syntax is not parsed; brackets and BREAK are text. */
        NONE;

        /** By name, ignoring case: original, no-norm, none, comfy (relative to the empty prompt). */
        public static Emphasis named(String name) {
            return switch (name == null ? "" : name.strip().toLowerCase(java.util.Locale.ROOT)) {
                case "original" -> ORIGINAL;
                case "no-norm", "no norm" -> NO_NORM;
                case "none" -> NONE;
                case "comfy", "comfyui" -> RELATIVE_TO_EMPTY;
                default -> throw new IllegalArgumentException("unknown emphasis \"" + name
                        + "\"; known: original, no-norm, none, comfy");
            };
        }
    }

    /** The conditioning of one prompt, its pooled output and the number of prompt tokens. */
    public record Encoded(Tensor context, Tensor pooled, int tokenCount) {
    }

    private final Backend backend;
    private final ClipTokenizer tokenizer;
    private final ClipTextEncoder encoder;
    private final ClipTokenizer.Padding padding;
    private final boolean finalNorm;

    /** {@code padding}: what follows the end token (SD 1.x: the end token; SD 2.x: 0). */
    public PromptEncoder(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder encoder, ClipTokenizer.Padding padding) {
        this(backend, tokenizer, encoder, padding, true);
    }

    /**
     * {@code finalNorm}: whether the chosen layer's output goes through the encoder's final LayerNorm
     * (SD 1.x and 2.x: yes; SDXL's encoders: no, they condition on the raw hidden state).
     */
    public PromptEncoder(Backend backend, ClipTokenizer tokenizer, ClipTextEncoder encoder, ClipTokenizer.Padding padding,
                         boolean finalNorm) {
        this.backend = backend;
        this.tokenizer = tokenizer;
        this.encoder = encoder;
        this.padding = padding;
        this.finalNorm = finalNorm;
    }

    /** The encoder's output {@code clipSkip} layers from the end, with or without the final norm. */
    private Tensor layer(ClipTextEncoder.Output out, int clipSkip) {
        if (finalNorm) {
            return encoder.clipSkip(out, clipSkip);
        }
        int n = out.hiddenStates().size() - 1;
        if (clipSkip < 1 || clipSkip > n) {
            throw new IllegalArgumentException("clip skip must be 1.." + n + ", got " + clipSkip);
        }
        return out.hiddenStates().get(n + 1 - clipSkip);
    }

    public Encoded encode(String prompt, int clipSkip, Emphasis emphasis) {
        List<PromptParser.Weighted> pieces = emphasis == Emphasis.NONE
                ? List.of(new PromptParser.Weighted(prompt, 1.0)) : PromptParser.parseAttention(prompt);
        PromptParser.Chunks chunks = PromptParser.chunks(tokenizer, pieces, PromptParser.COMMA_BACKTRACK);
        try (Backend.Scope scope = backend.scope()) {
            Tensor empty = null;
            List<Tensor> parts = new ArrayList<>();
            Tensor pooled = null;
            for (PromptParser.Chunk chunk : chunks.chunks()) {
                ClipTextEncoder.Output out = encoder.encode(new int[][] {padded(chunk.tokens())});
                if (pooled == null) {
                    pooled = out.projected() != null ? out.projected() : out.pooled();
                }
                Tensor z = layer(out, clipSkip);
                double[] w = chunk.multipliers();
                if (emphasis == Emphasis.RELATIVE_TO_EMPTY && Arrays.stream(w).anyMatch(v -> v != 1)) {
                    if (empty == null) {
                        int[] e = ClipTokenizer.pad(new int[0], padding);
                        empty = layer(encoder.encode(new int[][] {e}), clipSkip);
                    }
                    z = backend.upload(relativeToEmpty(backend.toHost(z), backend.toHost(empty), w));
                } else if (emphasis == Emphasis.ORIGINAL || emphasis == Emphasis.NO_NORM) {
                    z = backend.upload(multiply(backend.toHost(z), w, emphasis == Emphasis.ORIGINAL));
                }
                parts.add(z);
            }
            Tensor context = parts.size() == 1 ? parts.get(0) : backend.concat(1, parts.toArray(Tensor[]::new));
            return new Encoded(scope.keep(context), scope.keep(pooled), chunks.tokenCount());
        }
    }

    /** The chunk's ids with the padding after the first end token (SD 2.x pads with 0). */
    private int[] padded(int[] tokens) {
        int[] t = tokens.clone();
        if (padding == ClipTokenizer.Padding.ZERO) {
            int end = ClipTokenizer.endIndex(t);
            Arrays.fill(t, end + 1, t.length, 0);
        }
        return t;
    }

    /** z [1, 77, D] with each position scaled by its weight; optionally rescaled to the original mean. */
    private static Tensor multiply(Tensor z, double[] w, boolean restoreMean) {
        float[] v = z.toFloatArray();
        int d = v.length / w.length;
        double before = mean(v);
        for (int t = 0; t < w.length; t++) {
            float f = (float) w[t];
            for (int c = 0; c < d; c++) {
                v[t * d + c] *= f;
            }
        }
        if (restoreMean) {
            float ratio = (float) (before / mean(v));
            for (int i = 0; i < v.length; i++) {
                v[i] *= ratio;
            }
        }
        return Tensor.of(v, z.shape());
    }

    private static Tensor relativeToEmpty(Tensor z, Tensor empty, double[] w) {
        float[] v = z.toFloatArray();
        float[] e = empty.toFloatArray();
        int d = v.length / w.length;
        for (int t = 0; t < w.length; t++) {
            if (w[t] == 1) {
                continue;
            }
            for (int c = 0; c < d; c++) {
                int i = t * d + c;
                v[i] = (float) ((v[i] - e[i]) * w[t] + e[i]);
            }
        }
        return Tensor.of(v, z.shape());
    }

    private static double mean(float[] v) {
        double s = 0;
        for (float x : v) {
            s += x;
        }
        return s / v.length;
    }
}
