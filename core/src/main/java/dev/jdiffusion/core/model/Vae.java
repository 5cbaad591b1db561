package dev.jdiffusion.core.model;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.UnaryOperator;

/**
 * Stable Diffusion's first stage, the KL autoencoder (LDM {@code AutoencoderKL}: {@code Encoder},
 * {@code Decoder}, {@code quant_conv}, {@code post_quant_conv}), for SD 1.x, 2.x and SDXL alike. Its
 * shape (channels, levels, blocks per level, latent channels) is read from the weights, named as in
 * SD single-file checkpoints under a prefix ({@code first_stage_model.}). The latent scale factor is
 * the pipeline's business ({@link #SD_SCALE_FACTOR}, {@link #SDXL_SCALE_FACTOR}).
 */
public final class Vae {
    /** SD 1.x and 2.x: latent = 0.18215 · z. */
    public static final float SD_SCALE_FACTOR = 0.18215f;
    /** SDXL: latent = 0.13025 · z. */
    public static final float SDXL_SCALE_FACTOR = 0.13025f;
    private static final int GROUPS = 32;
    private static final float EPS = 1e-6f;

    /** The encoder's posterior, in host memory: mean and log-variance (clamped to [−30, 20]) of each latent element. */
    public record Posterior(Tensor moments, Tensor mean, Tensor logvar, Tensor std) {
    }

    /**
     * Receives each block's output by its module path (for comparing with a reference); may be null.
     * On a backend that reuses memory ({@link Backend#scope()}) a tensor is valid only during the call.
     */
    public interface Observer extends BiConsumer<String, Tensor> {
    }

    private final Backend backend;
    private final Map<String, Tensor> w;
    private final String prefix;
    private final int levels;
    private final int blocks;
    private final int zChannels;

    private Vae(Backend backend, Map<String, Tensor> weights, String prefix, int levels, int blocks, int zChannels) {
        this.backend = backend;
        this.w = weights;
        this.prefix = prefix;
        this.levels = levels;
        this.blocks = blocks;
        this.zChannels = zChannels;
    }

    /**
     * The parameters of a KL autoencoder in checkpoint naming (without a prefix), in the order LDM
     * creates them: {@code ch} base channels times {@code mult} per level, {@code blocks} res blocks
     * per encoder level (one more per decoder level), {@code z} latent channels. SD's VAE is
     * {@code (128, {1, 2, 4, 4}, 2, 4)}.
     */
    public static java.util.LinkedHashMap<String, int[]> parameterShapes(int ch, int[] mult, int blocks, int z) {
        java.util.LinkedHashMap<String, int[]> m = new java.util.LinkedHashMap<>();
        String e = "encoder.";
        int c = ch;
        conv(m, e + "conv_in", c, 3, 3);
        for (int level = 0; level < mult.length; level++) {
            int out = ch * mult[level];
            for (int j = 0; j < blocks; j++) {
                resShapes(m, e + "down." + level + ".block." + j, c, out);
                c = out;
            }
            if (level < mult.length - 1) {
                conv(m, e + "down." + level + ".downsample.conv", c, c, 3);
            }
        }
        midShapes(m, e + "mid", c);
        norm(m, e + "norm_out", c);
        conv(m, e + "conv_out", 2 * z, c, 3);
        String d = "decoder.";
        conv(m, d + "conv_in", c, z, 3);
        midShapes(m, d + "mid", c);
        for (int level = mult.length - 1; level >= 0; level--) {
            int out = ch * mult[level];
            for (int j = 0; j <= blocks; j++) {
                resShapes(m, d + "up." + level + ".block." + j, c, out);
                c = out;
            }
            if (level > 0) {
                conv(m, d + "up." + level + ".upsample.conv", c, c, 3);
            }
        }
        norm(m, d + "norm_out", c);
        conv(m, d + "conv_out", 3, c, 3);
        conv(m, "quant_conv", 2 * z, 2 * z, 1);
        conv(m, "post_quant_conv", z, z, 1);
        return m;
    }

    private static void norm(Map<String, int[]> m, String p, int c) {
        m.put(p + ".weight", new int[] {c});
        m.put(p + ".bias", new int[] {c});
    }

    private static void conv(Map<String, int[]> m, String p, int out, int in, int k) {
        m.put(p + ".weight", new int[] {out, in, k, k});
        m.put(p + ".bias", new int[] {out});
    }

    private static void resShapes(Map<String, int[]> m, String p, int in, int out) {
        norm(m, p + ".norm1", in);
        conv(m, p + ".conv1", out, in, 3);
        norm(m, p + ".norm2", out);
        conv(m, p + ".conv2", out, out, 3);
        if (in != out) {
            conv(m, p + ".nin_shortcut", out, in, 1);
        }
    }

    private static void midShapes(Map<String, int[]> m, String p, int c) {
        resShapes(m, p + ".block_1", c, c);
        norm(m, p + ".attn_1.norm", c);
        for (String x : new String[] {"q", "k", "v", "proj_out"}) {
            conv(m, p + ".attn_1." + x, c, c, 1);
        }
        resShapes(m, p + ".block_2", c, c);
    }

    /** The autoencoder whose weights sit under {@code prefix} (e.g. {@code first_stage_model.}). */
    public static Vae load(Backend backend, Map<String, Tensor> weights, String prefix) {
        if (!weights.containsKey(prefix + "encoder.conv_in.weight") && !weights.containsKey(prefix + "decoder.conv_in.weight")) {
            throw new IllegalArgumentException("no VAE under \"" + prefix + "\": " + prefix + "encoder.conv_in.weight and "
                    + prefix + "decoder.conv_in.weight are missing");
        }
        int levels = 0;
        while (weights.containsKey(prefix + "decoder.up." + levels + ".block.0.conv1.weight")) {
            levels++;
        }
        int blocks = 0;
        while (weights.containsKey(prefix + "decoder.up.0.block." + blocks + ".conv1.weight")) {
            blocks++;
        }
        if (levels == 0 || blocks < 2) {
            throw new IllegalArgumentException("the VAE under \"" + prefix + "\" has no decoder levels (decoder.up.N.block.M)");
        }
        Tensor postQuant = weights.get(prefix + "post_quant_conv.weight");
        int z = postQuant != null ? postQuant.dim(0) : weights.get(prefix + "decoder.conv_in.weight").dim(1);
        return new Vae(backend, weights, prefix, levels, blocks - 1, z);
    }

    /** Image pixels to latent pixels: 2^(levels − 1) (8 for the real VAE). */
    public int downsamplingFactor() {
        return 1 << (levels - 1);
    }

    public int latentChannels() {
        return zChannels;
    }

    private Tensor weight(String name) {
        Tensor t = w.get(prefix + name);
        if (t == null) {
            throw new IllegalArgumentException("the VAE needs " + prefix + name + ", which the checkpoint lacks");
        }
        return t;
    }

    private static void observe(Observer o, String name, Tensor t) {
        if (o != null) {
            o.accept(name, t);
        }
    }

    /** The posterior of images {@code x} [N, 3, H, W] in [−1, 1] (H, W multiples of the downsampling factor). */
    public Posterior encode(Tensor x, Observer o) {
        int f = downsamplingFactor();
        if (x.rank() != 4 || x.dim(2) % f != 0 || x.dim(3) % f != 0) {
            throw new IllegalArgumentException("the VAE encodes [N, C, H, W] images with H and W multiples of " + f
                    + ", got " + java.util.Arrays.toString(x.shape()));
        }
        try (Backend.Scope scope = backend.scope()) {
            Tensor in = backend.upload(x);
            String e = "encoder.";
            Tensor h = step(in, in, t -> conv(t, e + "conv_in", 1, 1));
            observe(o, e + "conv_in", h);
            for (int i = 0; i < levels; i++) {
                for (int j = 0; j < blocks; j++) {
                    String name = e + "down." + i + ".block." + j;
                    h = step(h, in, t -> resnet(t, name));
                    observe(o, name, h);
                }
                if (i != levels - 1) {
                    String name = e + "down." + i + ".downsample";
                    h = step(h, in, t -> downsample(t, name + ".conv"));
                    observe(o, name, h);
                }
            }
            h = mid(h, in, e, o);
            h = out(h, in, e, o);
            Tensor moments = step(h, in, t -> conv(t, "quant_conv", 1, 0));
            observe(o, "quant_conv", moments);
            return posterior(moments);
        }
    }

    /**
     * {@code f(h)} with its temporaries given back as it returns, and {@code h} as well unless it is the
     * caller's {@code input}: a pass holds one activation at a time besides the layer at work.
     */
    private Tensor step(Tensor h, Tensor input, UnaryOperator<Tensor> f) {
        Tensor r;
        try (Backend.Scope s = backend.scope()) {
            r = s.keep(f.apply(h));
        }
        if (h != input && h.storage() != r.storage()) {
            h.close();
        }
        return r;
    }

    /**
     * Mean and clamped log-variance from the moments (the channel halves), and the standard deviation;
     * all four in host memory.
     */
    private Posterior posterior(Tensor moments) {
        float[] m = backend.toHost(moments).toFloatArray();
        int n = moments.dim(0);
        int c = moments.dim(1) / 2;
        int hw = moments.dim(2) * moments.dim(3);
        float[] mean = new float[n * c * hw];
        float[] logvar = new float[mean.length];
        float[] std = new float[mean.length];
        for (int b = 0; b < n; b++) {
            System.arraycopy(m, b * 2 * c * hw, mean, b * c * hw, c * hw);
            for (int i = 0; i < c * hw; i++) {
                float lv = Math.min(20f, Math.max(-30f, m[(b * 2 + 1) * c * hw + i]));
                logvar[b * c * hw + i] = lv;
                std[b * c * hw + i] = (float) Math.exp(0.5 * lv);
            }
        }
        int[] shape = {n, c, moments.dim(2), moments.dim(3)};
        return new Posterior(Tensor.of(m, moments.shape()), Tensor.of(mean, shape), Tensor.of(logvar, shape), Tensor.of(std, shape));
    }

    /** A sample of the posterior: mean + std · eps, in this backend's memory. */
    public Tensor sample(Posterior p, Tensor eps) {
        return backend.add(backend.upload(p.mean()), backend.mul(backend.upload(p.std()), backend.upload(eps)));
    }

    /** Latents z [N, zc, h, w] (already divided by the scale factor) to images in about [−1, 1]. */
    public Tensor decode(Tensor z, Observer o) {
        if (z.rank() != 4 || z.dim(1) != zChannels) {
            throw new IllegalArgumentException("the VAE decodes [N, " + zChannels + ", h, w] latents, got "
                    + java.util.Arrays.toString(z.shape()));
        }
        try (Backend.Scope scope = backend.scope()) {
            Tensor in = backend.upload(z);
            String d = "decoder.";
            Tensor h = step(in, in, t -> conv(t, "post_quant_conv", 1, 0));
            observe(o, "post_quant_conv", h);
            h = step(h, in, t -> conv(t, d + "conv_in", 1, 1));
            observe(o, d + "conv_in", h);
            h = mid(h, in, d, o);
            for (int i = levels - 1; i >= 0; i--) {
                for (int j = 0; j <= blocks; j++) {
                    String name = d + "up." + i + ".block." + j;
                    h = step(h, in, t -> resnet(t, name));
                    observe(o, name, h);
                }
                if (i != 0) {
                    String name = d + "up." + i + ".upsample";
                    h = step(h, in, t -> conv(backend.upsampleNearest2x(t), name + ".conv", 1, 1));
                    observe(o, name, h);
                }
            }
            return scope.keep(out(h, in, d, o));
        }
    }

    /**
     * {@link #decode} tile by tile for large images: latent tiles of {@code tileLatent} that overlap by
     * {@code overlapLatent}, blended linearly (diffusers' default for SD: 64 and 16, i.e. 512-pixel
     * tiles). Memory follows the tile size, not the image. The image comes back in host memory.
     */
    public Tensor decodeTiled(Tensor z, int tileLatent, int overlapLatent) {
        return Tiles.apply(backend.toHost(z), tileLatent, overlapLatent, downsamplingFactor(), 1, t -> hostResult(decode(t, null)));
    }

    /**
     * {@link #encode} tile by tile: image tiles of {@code tilePixels} overlapping by {@code overlapPixels}
     * (multiples of the downsampling factor), their moments blended; the posterior follows from them.
     */
    public Posterior encodeTiled(Tensor x, int tilePixels, int overlapPixels) {
        int f = downsamplingFactor();
        if (tilePixels % f != 0 || overlapPixels % f != 0) {
            throw new IllegalArgumentException("tile and overlap must be multiples of " + f + " pixels");
        }
        Tensor moments = Tiles.apply(backend.toHost(x), tilePixels, overlapPixels, 1, f, t -> encode(t, null).moments());
        return posterior(moments);
    }

    /** A host copy of a tensor of this backend, its device memory given back at once. */
    private Tensor hostResult(Tensor t) {
        Tensor host = backend.toHost(t);
        if (host != t) {
            t.close();
        }
        return host;
    }

    private Tensor mid(Tensor h, Tensor in, String part, Observer o) {
        h = step(h, in, t -> resnet(t, part + "mid.block_1"));
        observe(o, part + "mid.block_1", h);
        h = step(h, in, t -> attention(t, part + "mid.attn_1"));
        observe(o, part + "mid.attn_1", h);
        h = step(h, in, t -> resnet(t, part + "mid.block_2"));
        observe(o, part + "mid.block_2", h);
        return h;
    }

    private Tensor out(Tensor h, Tensor in, String part, Observer o) {
        Tensor n = step(h, in, t -> backend.groupNorm(t, GROUPS, weight(part + "norm_out.weight"), weight(part + "norm_out.bias"),
                EPS, false));
        observe(o, part + "norm_out", n);
        Tensor r = step(n, in, t -> conv(backend.silu(t), part + "conv_out", 1, 1));
        observe(o, part + "conv_out", r);
        return r;
    }

    private Tensor conv(Tensor x, String name, int stride, int padding) {
        return backend.conv2d(x, weight(name + ".weight"), weight(name + ".bias"), stride, padding);
    }

    private Tensor resnet(Tensor x, String p) {
        Tensor h = backend.groupNorm(x, GROUPS, weight(p + ".norm1.weight"), weight(p + ".norm1.bias"), EPS, true);
        h = conv(h, p + ".conv1", 1, 1);
        h = backend.groupNorm(h, GROUPS, weight(p + ".norm2.weight"), weight(p + ".norm2.bias"), EPS, true);
        Tensor skip = w.containsKey(prefix + p + ".nin_shortcut.weight") ? conv(x, p + ".nin_shortcut", 1, 0) : x;
        // the shortcut added in conv2's epilogue
        return backend.conv2d(h, weight(p + ".conv2.weight"), weight(p + ".conv2.bias"), 1, 1, skip);
    }

    /** Zero padding of one column on the right and one row at the bottom, then a 3×3 convolution of stride 2. */
    private Tensor downsample(Tensor x, String name) {
        int n = x.dim(0);
        int c = x.dim(1);
        int hh = x.dim(2);
        int ww = x.dim(3);
        Tensor padded = backend.concat(3, x, backend.zeros(n, c, hh, 1));
        padded = backend.concat(2, padded, backend.zeros(n, c, 1, ww + 1));
        return conv(padded, name, 2, 0);
    }

    /** Single-head self-attention over the H·W positions, residual. */
    private Tensor attention(Tensor x, String p) {
        int n = x.dim(0);
        int c = x.dim(1);
        int hh = x.dim(2);
        int ww = x.dim(3);
        Tensor h = backend.groupNorm(x, GROUPS, weight(p + ".norm.weight"), weight(p + ".norm.bias"), EPS, false);
        Tensor seq = backend.permute(h.reshape(n, c, hh * ww), 0, 2, 1);
        Tensor q = backend.linear(seq, weight(p + ".q.weight").reshape(c, c), weight(p + ".q.bias"));
        Tensor k = backend.linear(seq, weight(p + ".k.weight").reshape(c, c), weight(p + ".k.bias"));
        Tensor v = backend.linear(seq, weight(p + ".v.weight").reshape(c, c), weight(p + ".v.bias"));
        Tensor o = backend.attention(q, k, v, 1, false);
        o = backend.linear(o, weight(p + ".proj_out.weight").reshape(c, c), weight(p + ".proj_out.bias"));
        return backend.add(x, backend.permute(o, 0, 2, 1).reshape(n, c, hh, ww));
    }
}
