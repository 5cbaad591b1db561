package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * The diffusion UNet of Stable Diffusion (LDM / sgm {@code UNetModel}), one implementation driven by
 * its configuration for SD 1.x, SD 2.x and SDXL: timestep embedding (and SDXL's vector input {@code y}),
 * ResBlocks, SpatialTransformers (self- and cross-attention, GEGLU feed-forward; 1×1-conv or linear
 * projections), strided-conv downsampling, nearest upsampling, skip connections. Weight names are
 * the checkpoint's ({@code model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight}, …).
 */
public final class UNet {
    /**
     * The constructor arguments of {@code UNetModel} that shape the network. {@code transformerDepth}
     * has one entry per level (0: no attention there), {@code middleDepth} is the middle transformer's;
     * exactly one of {@code numHeads} and {@code numHeadChannels} is positive; {@code admInChannels} is
     * the size of SDXL's vector input (0: none).
     */
    public record Config(int inChannels, int outChannels, int modelChannels, int[] attentionResolutions,
                         int numResBlocks, int[] channelMult, int numHeads, int numHeadChannels, int[] transformerDepth,
                         int middleDepth, int contextDim, boolean linearProjection, int admInChannels) {
        public Config {
            if (channelMult.length == 0 || transformerDepth.length != channelMult.length) {
                throw new IllegalArgumentException("transformer depth needs one entry per level: " + channelMult.length);
            }
            if ((numHeads > 0) == (numHeadChannels > 0)) {
                throw new IllegalArgumentException("give either the number of heads or the channels per head");
            }
            if (numResBlocks < 1 || modelChannels < 1 || modelChannels % 2 != 0) {
                throw new IllegalArgumentException("num_res_blocks must be >= 1 and model_channels even and positive");
            }
        }

        /** SD 1.x ({@code v1-inference.yaml}). */
        public static Config sd1() {
            return new Config(4, 4, 320, new int[] {4, 2, 1}, 2, new int[] {1, 2, 4, 4}, 8, -1, new int[] {1, 1, 1, 1}, 1,
                    768, false, 0);
        }

        /** SD 2.x ({@code v2-inference(-v).yaml}). */
        public static Config sd2() {
            return new Config(4, 4, 320, new int[] {4, 2, 1}, 2, new int[] {1, 2, 4, 4}, -1, 64, new int[] {1, 1, 1, 1}, 1,
                    1024, true, 0);
        }

        /** SDXL base ({@code sd_xl_base.yaml}). */
        public static Config sdxl() {
            return new Config(4, 4, 320, new int[] {4, 2}, 2, new int[] {1, 2, 4}, -1, 64, new int[] {0, 2, 10}, 10,
                    2048, true, 2816);
        }

        /** The SDXL refiner ({@code sd_xl_refiner.yaml}): 384 channels, four levels, OpenCLIP bigG context, aesthetic score. */
        public static Config sdxlRefiner() {
            return new Config(4, 4, 384, new int[] {4, 2}, 2, new int[] {1, 2, 4, 4}, -1, 64, new int[] {4, 4, 4, 4}, 4,
                    1280, true, 2560);
        }

        /**
         * Every parameter of a UNet of this configuration, by its name in the LDM/SGM tree (without the
         * {@code model.diffusion_model.} prefix), with its shape, in the order the network uses them:
         * what a checkpoint of this configuration holds.
         */
        public java.util.Map<String, int[]> parameterShapes() {
            java.util.Map<String, int[]> m = new java.util.LinkedHashMap<>();
            int time = 4 * modelChannels;
            linearShape(m, "time_embed.0", time, modelChannels);
            linearShape(m, "time_embed.2", time, time);
            if (admInChannels > 0) {
                linearShape(m, "label_emb.0.0", time, admInChannels);
                linearShape(m, "label_emb.0.2", time, time);
            }
            convShape(m, "input_blocks.0.0", modelChannels, inChannels, 3);
            Deque<Integer> skips = new ArrayDeque<>();
            skips.push(modelChannels);
            int ch = modelChannels;
            int block = 1;
            int ds = 1;
            for (int level = 0; level < channelMult.length; level++) {
                int out = channelMult[level] * modelChannels;
                for (int r = 0; r < numResBlocks; r++, block++) {
                    resShape(m, "input_blocks." + block + ".0", ch, out, time);
                    ch = out;
                    if (attentionAt(ds, level)) {
                        transformerShape(m, "input_blocks." + block + ".1", ch, transformerDepth[level]);
                    }
                    skips.push(ch);
                }
                if (level != channelMult.length - 1) {
                    convShape(m, "input_blocks." + block++ + ".0.op", ch, ch, 3);
                    skips.push(ch);
                    ds *= 2;
                }
            }
            resShape(m, "middle_block.0", ch, ch, time);
            transformerShape(m, "middle_block.1", ch, middleDepth);
            resShape(m, "middle_block.2", ch, ch, time);
            int o = 0;
            for (int level = channelMult.length - 1; level >= 0; level--) {
                int out = channelMult[level] * modelChannels;
                for (int r = 0; r <= numResBlocks; r++, o++) {
                    resShape(m, "output_blocks." + o + ".0", ch + skips.pop(), out, time);
                    ch = out;
                    int k = 1;
                    if (attentionAt(ds, level)) {
                        transformerShape(m, "output_blocks." + o + ".1", ch, transformerDepth[level]);
                        k = 2;
                    }
                    if (level > 0 && r == numResBlocks) {
                        convShape(m, "output_blocks." + o + "." + k + ".conv", ch, ch, 3);
                        ds /= 2;
                    }
                }
            }
            m.put("out.0.weight", new int[] {ch});
            m.put("out.0.bias", new int[] {ch});
            convShape(m, "out.2", outChannels, ch, 3);
            return m;
        }

        private static void linearShape(java.util.Map<String, int[]> m, String p, int out, int in) {
            m.put(p + ".weight", new int[] {out, in});
            m.put(p + ".bias", new int[] {out});
        }

        private static void convShape(java.util.Map<String, int[]> m, String p, int out, int in, int k) {
            m.put(p + ".weight", new int[] {out, in, k, k});
            m.put(p + ".bias", new int[] {out});
        }

        private static void resShape(java.util.Map<String, int[]> m, String p, int in, int out, int time) {
            m.put(p + ".in_layers.0.weight", new int[] {in});
            m.put(p + ".in_layers.0.bias", new int[] {in});
            convShape(m, p + ".in_layers.2", out, in, 3);
            linearShape(m, p + ".emb_layers.1", out, time);
            m.put(p + ".out_layers.0.weight", new int[] {out});
            m.put(p + ".out_layers.0.bias", new int[] {out});
            convShape(m, p + ".out_layers.3", out, out, 3);
            if (in != out) {
                convShape(m, p + ".skip_connection", out, in, 1);
            }
        }

        private void transformerShape(java.util.Map<String, int[]> m, String p, int c, int depth) {
            m.put(p + ".norm.weight", new int[] {c});
            m.put(p + ".norm.bias", new int[] {c});
            if (linearProjection) {
                linearShape(m, p + ".proj_in", c, c);
            } else {
                convShape(m, p + ".proj_in", c, c, 1);
            }
            for (int d = 0; d < depth; d++) {
                String t = p + ".transformer_blocks." + d + ".";
                for (String attn : new String[] {"attn1", "attn2"}) {
                    int kv = attn.equals("attn1") ? c : contextDim;
                    m.put(t + attn + ".to_q.weight", new int[] {c, c});
                    m.put(t + attn + ".to_k.weight", new int[] {c, kv});
                    m.put(t + attn + ".to_v.weight", new int[] {c, kv});
                    linearShape(m, t + attn + ".to_out.0", c, c);
                }
                linearShape(m, t + "ff.net.0.proj", 8 * c, c);
                linearShape(m, t + "ff.net.2", c, 4 * c);
                for (String n : new String[] {"norm1", "norm2", "norm3"}) {
                    m.put(t + n + ".weight", new int[] {c});
                    m.put(t + n + ".bias", new int[] {c});
                }
            }
            if (linearProjection) {
                linearShape(m, p + ".proj_out", c, c);
            } else {
                convShape(m, p + ".proj_out", c, c, 1);
            }
        }

        private boolean attentionAt(int ds, int level) {
            return transformerDepth[level] > 0 && Arrays.stream(attentionResolutions).anyMatch(r -> r == ds);
        }
    }

    /**
     * Receives intermediate tensors by name ({@code t_emb}, {@code emb}, {@code h.input_blocks.i}, …);
     * may be null. On a backend that reuses memory ({@link Backend#scope()}) a tensor is valid only
     * until the forward pass returns: copy what must outlive it.
     */
    public interface Observer extends BiConsumer<String, Tensor> {
    }

    private static final int GROUPS = 32;
    private final Backend backend;
    private final Map<String, Tensor> w;
    private final String prefix;
    private final Config cfg;
    private final LayerAdapter adapter;

    private UNet(Backend backend, Map<String, Tensor> weights, String prefix, Config cfg, LayerAdapter adapter) {
        this.backend = backend;
        this.w = weights;
        this.prefix = prefix;
        this.cfg = cfg;
        this.adapter = adapter;
    }

    /**
     * This UNet with an adapter's output added beside its layers' (the weights shared, nothing
     * copied); {@code null} for none. Each view is independent: threads may use different ones at once.
     */
    public UNet withAdapter(LayerAdapter a) {
        return new UNet(backend, w, prefix, cfg, a);
    }

    /** The UNet whose weights sit under {@code prefix} (e.g. {@code model.diffusion_model.}), shaped by {@code cfg}. */
    public static UNet load(Backend backend, Map<String, Tensor> weights, String prefix, Config cfg) {
        UNet u = new UNet(backend, weights, prefix, cfg, null);
        Tensor in = u.weight("input_blocks.0.0.weight");
        if (in.rank() != 4 || in.dim(0) != cfg.modelChannels() || in.dim(1) != cfg.inChannels()) {
            throw new IllegalArgumentException("input_blocks.0.0.weight is " + Arrays.toString(in.shape())
                    + ", the configuration expects [" + cfg.modelChannels() + ", " + cfg.inChannels() + ", 3, 3]");
        }
        if (cfg.admInChannels() > 0) {
            u.weight("label_emb.0.0.weight");
        }
        return u;
    }

    public Config config() {
        return cfg;
    }

    /** The backend the UNet runs on. */
    public Backend backend() {
        return backend;
    }

    private Tensor weight(String name) {
        Tensor t = w.get(prefix + name);
        if (t == null) {
            throw new IllegalArgumentException("the UNet needs " + prefix + name + ", which the checkpoint lacks");
        }
        return t;
    }

    private static void observe(Observer o, String name, Tensor t) {
        if (o != null) {
            o.accept(name, t);
        }
    }

    /**
     * The model output for latents x {@code [B, C, H, W]} (H and W multiples of 2^(levels − 1)) at real
     * timesteps t (one per batch item), cross-attending to {@code context [B, T, contextDim]};
     * {@code y [B, admInChannels]} for SDXL, else null. Inputs in host memory are brought to the
     * backend for the pass; the result is the backend's (see {@link Backend#toHost}). Everything else
     * the pass makes is given back when it returns.
     */
    public Tensor forward(Tensor x, float[] timesteps, Tensor context, Tensor y, Observer o) {
        return forward(x, Tensor.of(timesteps.clone(), timesteps.length), context, y, o);
    }

    /**
     * As {@link #forward(Tensor, float[], Tensor, Tensor, Observer)} with the timesteps a float32
     * tensor {@code [B]}; every input may already be in the backend's memory, so that a GPU step can
     * run without touching the host (and be captured as one graph).
     */
    public Tensor forward(Tensor x, Tensor timesteps, Tensor context, Tensor y, Observer o) {
        int b = x.dim(0);
        int f = 1 << (cfg.channelMult().length - 1);
        if (x.rank() != 4 || x.dim(1) != cfg.inChannels() || x.dim(2) % f != 0 || x.dim(3) % f != 0) {
            throw new IllegalArgumentException("the UNet takes [B, " + cfg.inChannels() + ", H, W] latents with H and W multiples of "
                    + f + ", got " + Arrays.toString(x.shape()));
        }
        if (timesteps.rank() != 1 || timesteps.dim(0) != b || context.rank() != 3 || context.dim(0) != b
                || context.dim(2) != cfg.contextDim()) {
            throw new IllegalArgumentException("for a batch of " + b + " the UNet needs " + b + " timesteps and a context [" + b
                    + ", T, " + cfg.contextDim() + "], got " + Arrays.toString(timesteps.shape()) + " and "
                    + Arrays.toString(context.shape()));
        }
        if ((cfg.admInChannels() > 0) != (y != null) || y != null && (y.dim(0) != b || y.dim(1) != cfg.admInChannels())) {
            throw new IllegalArgumentException(cfg.admInChannels() > 0 ? "this UNet needs its vector input y [" + b + ", "
                    + cfg.admInChannels() + "]" : "this UNet takes no vector input y");
        }
        try (Backend.Scope scope = backend.scope()) {
            return scope.keep(run(backend.upload(x), timesteps, backend.upload(context), y == null ? null : backend.upload(y), o));
        }
    }

    /** The forward pass; each block's temporaries are given back when it ends, its output kept until the pass ends. */
    private Tensor run(Tensor x, Tensor timesteps, Tensor context, Tensor y, Observer o) {
        Tensor tEmb = backend.timestepEmbedding(timesteps, cfg.modelChannels(), 10000f, true, 0f);
        observe(o, "t_emb", tEmb);
        Tensor emb = mlp(tEmb, "time_embed");
        if (y != null) {
            observe(o, "emb_time", emb);
            Tensor label = mlp(y, "label_emb.0");
            observe(o, "emb_label", label);
            emb = backend.add(emb, label);
        }
        observe(o, "emb", emb);
        Tensor embAct = backend.silu(emb);

        Deque<Tensor> skips = new ArrayDeque<>();
        Tensor h = conv(x, "input_blocks.0.0", 1, 1);
        skips.push(h);
        observe(o, "h.input_blocks.0", h);
        int block = 1;
        int ds = 1;
        int[] mult = cfg.channelMult();
        for (int level = 0; level < mult.length; level++) {
            for (int r = 0; r < cfg.numResBlocks(); r++) {
                String p = "input_blocks." + block + ".";
                h = resBlock(h, embAct, p + "0");
                if (cfg.attentionAt(ds, level)) {
                    h = transformer(h, context, p + "1", cfg.transformerDepth()[level]);
                }
                skips.push(h);
                observe(o, "h.input_blocks." + block, h);
                block++;
            }
            if (level != mult.length - 1) {
                h = conv(h, "input_blocks." + block + ".0.op", 2, 1);
                skips.push(h);
                observe(o, "h.input_blocks." + block, h);
                block++;
                ds *= 2;
            }
        }
        h = resBlock(h, embAct, "middle_block.0");
        h = transformer(h, context, "middle_block.1", cfg.middleDepth());
        h = resBlock(h, embAct, "middle_block.2");
        observe(o, "h.middle_block", h);
        int out = 0;
        for (int level = mult.length - 1; level >= 0; level--) {
            for (int r = 0; r <= cfg.numResBlocks(); r++) {
                String p = "output_blocks." + out + ".";
                Tensor skip = skips.pop();
                try (Backend.Scope s = backend.scope()) {
                    h = s.keep(resBlock(backend.concat(1, h, skip), embAct, p + "0"));
                }
                int k = 1;
                if (cfg.attentionAt(ds, level)) {
                    h = transformer(h, context, p + "1", cfg.transformerDepth()[level]);
                    k = 2;
                }
                if (level > 0 && r == cfg.numResBlocks()) {
                    try (Backend.Scope s = backend.scope()) {
                        h = s.keep(conv(backend.upsampleNearest2x(h), p + k + ".conv", 1, 1));
                    }
                    ds /= 2;
                }
                observe(o, "h.output_blocks." + out, h);
                out++;
            }
        }
        try (Backend.Scope s = backend.scope()) {
            h = backend.groupNorm(h, GROUPS, weight("out.0.weight"), weight("out.0.bias"), 1e-5f, true);
            return s.keep(conv(h, "out.2", 1, 1));
        }
    }

    private Tensor mlp(Tensor x, String p) {
        Tensor h = linear(x, p + ".0");
        return linear(backend.silu(h), p + ".2");
    }

    private Tensor conv(Tensor x, String name, int stride, int padding) {
        return conv(x, name, stride, padding, null);
    }

    /**
     * The convolution {@code name}, plus {@code residual} (null for none) in its epilogue; with an
     * adapter beside the weights, the adapter's term first and the residual after, as separate adds.
     */
    private Tensor conv(Tensor x, String name, int stride, int padding, Tensor residual) {
        Tensor wt = weight(name + ".weight");
        Tensor b = weight(name + ".bias");
        if (adapter == null) {
            return backend.conv2d(x, wt, b, stride, padding, residual);
        }
        return plus(adapted(backend.conv2d(x, wt, b, stride, padding), x, name, true, stride, padding), residual);
    }

    /** The linear layer {@code name} (with its bias when it has one). */
    private Tensor linear(Tensor x, String name) {
        return linear(x, name, null);
    }

    /** The linear layer {@code name}, plus {@code residual} (null for none) as {@link #conv(Tensor, String, int, int, Tensor)}. */
    private Tensor linear(Tensor x, String name, Tensor residual) {
        Tensor b = w.get(prefix + name + ".bias");
        if (adapter == null) {
            return backend.linear(x, linearWeight(name), b, residual);
        }
        return plus(adapted(backend.linear(x, linearWeight(name), b), x, name, false, 1, 0), residual);
    }

    private Tensor plus(Tensor y, Tensor residual) {
        return residual == null ? y : backend.add(y, residual);
    }

    /** The linear layer {@code name} followed by GEGLU, as one op (no adapter may add to it in between). */
    private Tensor linearGeglu(Tensor x, String name) {
        return backend.linearGeglu(x, linearWeight(name), w.get(prefix + name + ".bias"));
    }

    /** The weight of linear layer {@code name}, reshaped to [out, in]. */
    private Tensor linearWeight(String name) {
        Tensor wt = weight(name + ".weight");
        return wt.reshape(wt.dim(0), (int) (wt.numel() / wt.dim(0)));
    }

    private Tensor adapted(Tensor y, Tensor x, String name, boolean conv, int stride, int padding) {
        if (adapter == null) {
            return y;
        }
        Tensor extra = adapter.extra(backend, prefix + name + ".weight", x, conv, stride, padding);
        return extra == null ? y : backend.add(y, extra);
    }

    private Tensor resBlock(Tensor x, Tensor embAct, String p) {
        try (Backend.Scope s = backend.scope()) {
            return s.keep(resBlockIn(x, embAct, p));
        }
    }

    private Tensor resBlockIn(Tensor x, Tensor embAct, String p) {
        Tensor a = backend.groupNorm(x, GROUPS, weight(p + ".in_layers.0.weight"), weight(p + ".in_layers.0.bias"), 1e-5f, true);
        a = conv(a, p + ".in_layers.2", 1, 1);
        Tensor e = linear(embAct, p + ".emb_layers.1");
        a = backend.add(a, e.reshape(e.dim(0), e.dim(1), 1, 1));
        a = backend.groupNorm(a, GROUPS, weight(p + ".out_layers.0.weight"), weight(p + ".out_layers.0.bias"), 1e-5f, true);
        Tensor skip = w.containsKey(prefix + p + ".skip_connection.weight") ? conv(x, p + ".skip_connection", 1, 0) : x;
        return conv(a, p + ".out_layers.3", 1, 1, skip);
    }

    private Tensor transformer(Tensor x, Tensor context, String p, int depth) {
        try (Backend.Scope s = backend.scope()) {
            return s.keep(transformerIn(x, context, p, depth));
        }
    }

    private Tensor transformerIn(Tensor x, Tensor context, String p, int depth) {
        int b = x.dim(0);
        int c = x.dim(1);
        int hh = x.dim(2);
        int ww = x.dim(3);
        int heads = cfg.numHeads() > 0 ? cfg.numHeads() : c / cfg.numHeadChannels();
        Tensor a = backend.groupNorm(x, GROUPS, weight(p + ".norm.weight"), weight(p + ".norm.bias"), 1e-6f, false);
        int inner = weight(p + ".proj_in.weight").dim(0);
        if (cfg.linearProjection()) {
            a = linear(tokens(a), p + ".proj_in");
        } else {
            a = tokens(conv(a, p + ".proj_in", 1, 0));
        }
        for (int d = 0; d < depth; d++) {
            Tensor previous = a;
            try (Backend.Scope s = backend.scope()) {
                a = s.keep(basicBlock(a, context, p + ".transformer_blocks." + d + ".", heads));
            }
            if (d > 0) {
                previous.close();
            }
        }
        if (cfg.linearProjection()) {
            // tokens out, the residual in [B, C, H, W]: added after the layout change
            a = linear(a, p + ".proj_out");
            return backend.add(backend.permute(a, 0, 2, 1).reshape(b, c, hh, ww), x);
        }
        return conv(backend.permute(a, 0, 2, 1).reshape(b, inner, hh, ww), p + ".proj_out", 1, 0, x);
    }

    /** One transformer block: self-attention, cross-attention, GEGLU feed-forward, each residual. */
    private Tensor basicBlock(Tensor a, Tensor context, String t, int heads) {
        Tensor n1 = layerNorm(a, t + "norm1");
        a = attention(n1, n1, t + "attn1", heads, a);
        a = attention(layerNorm(a, t + "norm2"), context, t + "attn2", heads, a);
        Tensor n3 = layerNorm(a, t + "norm3");
        // fused unless an adapter adds to the projection before its GEGLU
        Tensor g = adapter == null ? linearGeglu(n3, t + "ff.net.0.proj")
                : backend.geglu(linear(n3, t + "ff.net.0.proj"));
        return linear(g, t + "ff.net.2", a);
    }

    /** [B, C, H, W] to the token sequence [B, H·W, C]. */
    private Tensor tokens(Tensor x) {
        return backend.permute(x.reshape(x.dim(0), x.dim(1), x.dim(2) * x.dim(3)), 0, 2, 1);
    }

    private Tensor layerNorm(Tensor x, String p) {
        return backend.layerNorm(x, weight(p + ".weight"), weight(p + ".bias"), 1e-5f);
    }

    /** Multi-head attention of x over ctx, its output projection added to {@code residual}. */
    private Tensor attention(Tensor x, Tensor ctx, String p, int heads, Tensor residual) {
        Tensor q = linear(x, p + ".to_q");
        Tensor k = linear(ctx, p + ".to_k");
        Tensor v = linear(ctx, p + ".to_v");
        Tensor o = backend.attention(q, k, v, heads, false);
        return linear(o, p + ".to_out.0", residual);
    }
}
