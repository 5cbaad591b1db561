package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * CLIP's text transformer (OpenAI {@code clip/model.py}), the text encoder of Stable Diffusion:
 * token + position embeddings, pre-LayerNorm residual blocks of causal multi-head self-attention and
 * an MLP (QuickGELU for SD 1.x's CLIP ViT-L, exact GELU for OpenCLIP ViT-H/bigG of SD 2.x and SDXL),
 * a final LayerNorm, the pooled output at the first end token and, where the model has one, its
 * projection. Weights are read under SD 1.x (transformers {@code CLIPTextModel}) or SD 2.x / SDXL
 * (open_clip) names; F16/BF16 weights stay in their storage type.
 */
public final class ClipTextEncoder {
    /** The MLP's activation. */
    public enum Activation {
        /** {@code x·sigmoid(1.702x)}: OpenAI CLIP ViT-L/14 (SD 1.x, SDXL's first encoder). */
        QUICK_GELU,
        /** GELU with the exact erf: OpenCLIP ViT-H/14 and bigG/14 (SD 2.x, SDXL's second encoder). */
        GELU
    }

    /**
     * Everything one forward pass gives: {@code hiddenStates} (L + 1 of them: the embeddings, then each
     * layer's output, {@code [B, 77, D]}), the last one after the final norm, the pooled output at the
     * end token {@code [B, D]} and its projection {@code [B, E]} (null without a projection).
     */
    public record Output(List<Tensor> hiddenStates, Tensor lastHiddenState, Tensor pooled, Tensor projected) {
        /** The output of the penultimate layer, without the final norm (what SDXL takes). */
        public Tensor penultimate() {
            return hiddenStates.get(hiddenStates.size() - 2);
        }
    }

    private record Layer(Tensor ln1W, Tensor ln1B, Tensor qW, Tensor qB, Tensor kW, Tensor kB, Tensor vW, Tensor vB,
                         Tensor outW, Tensor outB, Tensor ln2W, Tensor ln2B, Tensor fc1W, Tensor fc1B, Tensor fc2W,
                         Tensor fc2B) {
    }

    private static final float EPS = 1e-5f;
    private final Backend backend;
    private final int heads;
    private final Activation activation;
    private final Tensor tokenEmbedding;
    private final Tensor positionEmbedding;
    private final List<Layer> layers;
    private final Tensor finalW;
    private final Tensor finalB;
    private final Tensor projection;

    private ClipTextEncoder(Backend backend, int heads, Activation activation, Tensor tokenEmbedding,
                            Tensor positionEmbedding, List<Layer> layers, Tensor finalW, Tensor finalB, Tensor projection) {
        this.backend = backend;
        this.heads = heads;
        this.activation = activation;
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
        this.layers = List.copyOf(layers);
        this.finalW = finalW;
        this.finalB = finalB;
        this.projection = projection;
    }

    /**
     * The parameters of a CLIP text model in the transformers naming ({@code embeddings.},
     * {@code encoder.layers.N.}, {@code final_layer_norm}; no prefix), in the order transformers'
     * state dict lists them: {@code vocab} tokens, width {@code d}, {@code layers} layers, MLP 4·d.
     * SD 1.x's ViT-L/14 is {@code (49408, 768, 12)}.
     */
    public static java.util.LinkedHashMap<String, int[]> parameterShapes(int vocab, int d, int layers) {
        java.util.LinkedHashMap<String, int[]> m = new java.util.LinkedHashMap<>();
        m.put("embeddings.token_embedding.weight", new int[] {vocab, d});
        m.put("embeddings.position_embedding.weight", new int[] {ClipTokenizer.CONTEXT_LENGTH, d});
        for (int l = 0; l < layers; l++) {
            String p = "encoder.layers." + l + ".";
            for (String x : new String[] {"k_proj", "v_proj", "q_proj", "out_proj"}) {
                m.put(p + "self_attn." + x + ".weight", new int[] {d, d});
                m.put(p + "self_attn." + x + ".bias", new int[] {d});
            }
            m.put(p + "layer_norm1.weight", new int[] {d});
            m.put(p + "layer_norm1.bias", new int[] {d});
            m.put(p + "mlp.fc1.weight", new int[] {4 * d, d});
            m.put(p + "mlp.fc1.bias", new int[] {4 * d});
            m.put(p + "mlp.fc2.weight", new int[] {d, 4 * d});
            m.put(p + "mlp.fc2.bias", new int[] {d});
            m.put(p + "layer_norm2.weight", new int[] {d});
            m.put(p + "layer_norm2.bias", new int[] {d});
        }
        m.put("final_layer_norm.weight", new int[] {d});
        m.put("final_layer_norm.bias", new int[] {d});
        return m;
    }

    /**
     * The encoder whose weights sit under {@code prefix} (e.g. {@code cond_stage_model.transformer.text_model.}
     * or {@code cond_stage_model.model.}), in either naming. The projection is open_clip's
     * {@code text_projection} [D, E] under the prefix when present; use {@link #withProjection} otherwise.
     */
    public static ClipTextEncoder load(Backend backend, Map<String, Tensor> weights, String prefix, int heads,
                                       Activation activation) {
        Weights w = new Weights(weights, prefix);
        boolean hf = weights.containsKey(prefix + "embeddings.token_embedding.weight");
        List<Layer> layers = new ArrayList<>();
        if (hf) {
            for (int n = 0; weights.containsKey(prefix + "encoder.layers." + n + ".layer_norm1.weight"); n++) {
                String l = "encoder.layers." + n + ".";
                layers.add(new Layer(w.get(l + "layer_norm1.weight"), w.get(l + "layer_norm1.bias"),
                        w.get(l + "self_attn.q_proj.weight"), w.get(l + "self_attn.q_proj.bias"),
                        w.get(l + "self_attn.k_proj.weight"), w.get(l + "self_attn.k_proj.bias"),
                        w.get(l + "self_attn.v_proj.weight"), w.get(l + "self_attn.v_proj.bias"),
                        w.get(l + "self_attn.out_proj.weight"), w.get(l + "self_attn.out_proj.bias"),
                        w.get(l + "layer_norm2.weight"), w.get(l + "layer_norm2.bias"),
                        w.get(l + "mlp.fc1.weight"), w.get(l + "mlp.fc1.bias"),
                        w.get(l + "mlp.fc2.weight"), w.get(l + "mlp.fc2.bias")));
            }
            return check(new ClipTextEncoder(backend, heads, activation, w.get("embeddings.token_embedding.weight"),
                    w.get("embeddings.position_embedding.weight"), layers, w.get("final_layer_norm.weight"),
                    w.get("final_layer_norm.bias"), weights.get(prefix + "text_projection")), prefix);
        }
        if (!weights.containsKey(prefix + "token_embedding.weight")) {
            throw new IllegalArgumentException("no CLIP text encoder under \"" + prefix + "\": neither "
                    + prefix + "embeddings.token_embedding.weight (SD 1.x) nor " + prefix + "token_embedding.weight (open_clip)");
        }
        for (int n = 0; weights.containsKey(prefix + "transformer.resblocks." + n + ".ln_1.weight"); n++) {
            String l = "transformer.resblocks." + n + ".";
            Tensor in = w.get(l + "attn.in_proj_weight");
            Tensor inB = w.get(l + "attn.in_proj_bias");
            int d = in.dim(1);
            if (in.dim(0) != 3 * d || inB.dim(0) != 3 * d) {
                throw new IllegalArgumentException(prefix + l + "attn.in_proj_weight must be [3·D, D], got "
                        + java.util.Arrays.toString(in.shape()));
            }
            layers.add(new Layer(w.get(l + "ln_1.weight"), w.get(l + "ln_1.bias"),
                    in.slice(0, d), inB.slice(0, d), in.slice(d, 2 * d), inB.slice(d, 2 * d),
                    in.slice(2 * d, 3 * d), inB.slice(2 * d, 3 * d),
                    w.get(l + "attn.out_proj.weight"), w.get(l + "attn.out_proj.bias"),
                    w.get(l + "ln_2.weight"), w.get(l + "ln_2.bias"),
                    w.get(l + "mlp.c_fc.weight"), w.get(l + "mlp.c_fc.bias"),
                    w.get(l + "mlp.c_proj.weight"), w.get(l + "mlp.c_proj.bias")));
        }
        return check(new ClipTextEncoder(backend, heads, activation, w.get("token_embedding.weight"),
                w.get("positional_embedding"), layers, w.get("ln_final.weight"), w.get("ln_final.bias"),
                weights.get(prefix + "text_projection")), prefix);
    }

    private static ClipTextEncoder check(ClipTextEncoder e, String prefix) {
        int d = e.width();
        if (e.layers.isEmpty()) {
            throw new IllegalArgumentException("the CLIP text encoder under \"" + prefix + "\" has no layers");
        }
        if (e.heads < 1 || d % e.heads != 0) {
            throw new IllegalArgumentException("width " + d + " is not divisible into " + e.heads + " heads");
        }
        if (e.positionEmbedding.rank() != 2 || e.positionEmbedding.dim(1) != d
                || e.positionEmbedding.dim(0) < ClipTokenizer.CONTEXT_LENGTH) {
            throw new IllegalArgumentException("position embedding must be [77, " + d + "], got "
                    + java.util.Arrays.toString(e.positionEmbedding.shape()));
        }
        if (e.projection != null && (e.projection.rank() != 2 || e.projection.dim(0) != d)) {
            throw new IllegalArgumentException("text projection must be [" + d + ", E], got "
                    + java.util.Arrays.toString(e.projection.shape()));
        }
        return e;
    }

    /** This encoder with a text projection {@code [D, E]} (open_clip's layout; transformers stores its transpose). */
    public ClipTextEncoder withProjection(Tensor projection) {
        return check(new ClipTextEncoder(backend, heads, activation, tokenEmbedding, positionEmbedding, layers, finalW,
                finalB, projection), "");
    }

    public int width() {
        return tokenEmbedding.dim(1);
    }

    /** Whether the pooled output is projected ({@link Output#projected()} not null). */
    public boolean hasProjection() {
        return projection != null;
    }

    public int layers() {
        return layers.size();
    }

    /** The forward pass over B sequences of 77 ids. */
    public Output encode(int[][] inputIds) {
        int b = inputIds.length;
        int t = ClipTokenizer.CONTEXT_LENGTH;
        int d = width();
        int[] flat = new int[b * t];
        for (int i = 0; i < b; i++) {
            if (inputIds[i].length != t) {
                throw new IllegalArgumentException("sequence " + i + " has " + inputIds[i].length + " ids, the encoder takes " + t);
            }
            for (int j = 0; j < t; j++) {
                int id = inputIds[i][j];
                if (id < 0 || id >= tokenEmbedding.dim(0)) {
                    throw new IllegalArgumentException("token id " + id + " is outside the vocabulary of " + tokenEmbedding.dim(0));
                }
                flat[i * t + j] = id;
            }
        }
        Tensor x = backend.add(backend.embedding(tokenEmbedding, flat).reshape(b, t, d),
                positionEmbedding.dim(0) == t ? positionEmbedding : positionEmbedding.slice(0, t));
        List<Tensor> hidden = new ArrayList<>();
        hidden.add(x);
        for (Layer l : layers) {
            try (Backend.Scope s = backend.scope()) {
                x = s.keep(layer(x, l));
            }
            hidden.add(x);
        }
        Tensor last = finalNorm(x);
        float[] lastData = backend.toHost(last).toFloatArray();
        float[] pooled = new float[b * d];
        for (int i = 0; i < b; i++) {
            int eot = ClipTokenizer.endIndex(inputIds[i]);
            System.arraycopy(lastData, (i * t + eot) * d, pooled, i * d, d);
        }
        Tensor pooledT = backend.upload(Tensor.of(pooled, b, d));
        Tensor projected = projection == null ? null : backend.matmul(pooledT, projection, false, false);
        return new Output(List.copyOf(hidden), last, pooledT, projected);
    }

    /** One residual attention block (pre-norm, causal self-attention, MLP; each output projection adds the residual). */
    private Tensor layer(Tensor x, Layer l) {
        Tensor h = backend.layerNorm(x, l.ln1W(), l.ln1B(), EPS);
        Tensor q = backend.linear(h, l.qW(), l.qB());
        Tensor k = backend.linear(h, l.kW(), l.kB());
        Tensor v = backend.linear(h, l.vW(), l.vB());
        Tensor o = backend.attention(q, k, v, heads, true);
        x = backend.linear(o, l.outW(), l.outB(), x);
        Tensor m = backend.linear(backend.layerNorm(x, l.ln2W(), l.ln2B(), EPS), l.fc1W(), l.fc1B());
        m = activation == Activation.QUICK_GELU ? backend.quickGelu(m) : backend.gelu(m);
        return backend.linear(m, l.fc2W(), l.fc2B(), x);
    }

    /**
     * The conditioning for A1111's "clip skip" n ≥ 1: the output of layer L − n + 1 through the final
     * norm (n = 1: the last hidden state; n = 2: the penultimate layer, SD 2.x's default).
     */
    public Tensor clipSkip(Output out, int n) {
        if (n < 1 || n > layers.size()) {
            throw new IllegalArgumentException("clip skip must be 1.." + layers.size() + ", got " + n);
        }
        return n == 1 ? out.lastHiddenState() : finalNorm(out.hiddenStates().get(out.hiddenStates().size() - n));
    }

    /** The final LayerNorm. */
    public Tensor finalNorm(Tensor x) {
        return backend.layerNorm(x, finalW, finalB, EPS);
    }

    /** Weight lookup under a prefix with an error that names the missing key. */
    private record Weights(Map<String, Tensor> all, String prefix) {
        Tensor get(String name) {
            Tensor t = all.get(prefix + name);
            if (t == null) {
                throw new IllegalArgumentException("the CLIP text encoder needs " + prefix + name + ", which the checkpoint lacks");
            }
            return t;
        }
    }
}
