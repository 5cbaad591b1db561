package dev.jdiffusion.conformance;

import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

/**
 * Small random networks in checkpoint naming, for composing models the conformance data does not
 * hold whole: norms near 1, other weights N(0, 1/fan_in), seeded.
 */
final class RandomWeights {
    private RandomWeights() {
    }

    private static void put(Map<String, Tensor> w, Random r, String name, int... shape) {
        int n = 1;
        for (int x : shape) {
            n *= x;
        }
        int fanIn = shape.length == 1 ? 1 : n / shape[0];
        boolean norm = shape.length == 1 && name.endsWith("weight") && (name.contains("ln") || name.contains("norm"));
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) (norm ? 1 + 0.1 * r.nextGaussian()
                    : shape.length == 1 ? 0.1 * r.nextGaussian() : r.nextGaussian() / Math.sqrt(fanIn));
        }
        w.put(name, Tensor.of(f, shape));
    }

    /** An OpenCLIP text tower ({@code token_embedding}, {@code transformer.resblocks.N}, fused in_proj) under {@code prefix}. */
    static Map<String, Tensor> openClip(String prefix, int d, int layers, int projection, long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> w = new HashMap<>();
        put(w, r, prefix + "token_embedding.weight", 49408, d);
        put(w, r, prefix + "positional_embedding", 77, d);
        for (int l = 0; l < layers; l++) {
            String b = prefix + "transformer.resblocks." + l + ".";
            put(w, r, b + "ln_1.weight", d);
            put(w, r, b + "ln_1.bias", d);
            put(w, r, b + "attn.in_proj_weight", 3 * d, d);
            put(w, r, b + "attn.in_proj_bias", 3 * d);
            put(w, r, b + "attn.out_proj.weight", d, d);
            put(w, r, b + "attn.out_proj.bias", d);
            put(w, r, b + "ln_2.weight", d);
            put(w, r, b + "ln_2.bias", d);
            put(w, r, b + "mlp.c_fc.weight", 4 * d, d);
            put(w, r, b + "mlp.c_fc.bias", 4 * d);
            put(w, r, b + "mlp.c_proj.weight", d, 4 * d);
            put(w, r, b + "mlp.c_proj.bias", d);
        }
        put(w, r, prefix + "ln_final.weight", d);
        put(w, r, prefix + "ln_final.bias", d);
        if (projection > 0) {
            put(w, r, prefix + "text_projection", d, projection);
        }
        return w;
    }

    /** A CLIP text model in Hugging Face naming ({@code embeddings.}, {@code encoder.layers.N}) under {@code prefix}. */
    static Map<String, Tensor> hfClip(String prefix, int d, int layers, long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> w = new HashMap<>();
        ClipTextEncoder.parameterShapes(49408, d, layers).forEach((k, shape) -> put(w, r, prefix + k, shape));
        return w;
    }

    /** A UNet of the configuration, every parameter {@link UNet.Config#parameterShapes()} lists, under {@code model.diffusion_model.}. */
    static Map<String, Tensor> unet(UNet.Config cfg, long seed) {
        Random r = new Random(seed);
        Map<String, Tensor> w = new HashMap<>();
        cfg.parameterShapes().forEach((k, shape) -> put(w, r, "model.diffusion_model." + k, shape));
        return w;
    }
}
