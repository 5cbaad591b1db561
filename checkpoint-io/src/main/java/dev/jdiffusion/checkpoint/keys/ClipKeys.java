package dev.jdiffusion.checkpoint.keys;

import dev.jdiffusion.checkpoint.StoredTensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Text-encoder weights between OpenCLIP naming (SD 2.x {@code cond_stage_model.model.}, SDXL
 * {@code conditioner.embedders.1.model.}: {@code transformer.resblocks.N} with a fused
 * {@code attn.in_proj_weight}) and the Hugging Face {@code CLIPTextModel} naming that diffusers
 * folders use ({@code text_model.encoder.layers.N} with separate q/k/v projections). The fused
 * projection is split into three (and stacked back), and {@code text_projection} is transposed
 * (OpenCLIP multiplies by it, a linear layer by its transpose). Names carry no prefix.
 *
 * <p>SD 1.x text encoders need no mapping: their single-file names are the Hugging Face ones under
 * {@code cond_stage_model.transformer.}.
 */
public final class ClipKeys {
    private static final Pattern OC_LAYER = Pattern.compile("^transformer\\.resblocks\\.(\\d+)\\.(.*)$");
    private static final Pattern HF_LAYER = Pattern.compile("^text_model\\.encoder\\.layers\\.(\\d+)\\.(.*)$");
    private static final Pattern HF_QKV = Pattern.compile("^self_attn\\.([qkv])_proj\\.(weight|bias)$");
    private static final String[][] LAYER = {
        {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."},
        {"attn.out_proj.", "self_attn.out_proj."},
    };
    private static final String[][] TOP = {
        {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
        {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
        {"ln_final.weight", "text_model.final_layer_norm.weight"},
        {"ln_final.bias", "text_model.final_layer_norm.bias"},
    };

    private ClipKeys() {
    }

    /** OpenCLIP text-encoder weights as a Hugging Face {@code CLIPTextModel(WithProjection)}. */
    public static Map<String, StoredTensor> openClipToHf(Map<String, StoredTensor> weights, List<String> unmapped) {
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : weights.entrySet()) {
            String k = e.getKey();
            StoredTensor t = e.getValue();
            Matcher m = OC_LAYER.matcher(k);
            if (m.matches()) {
                String p = "text_model.encoder.layers." + m.group(1) + ".";
                String rest = m.group(2);
                if (rest.equals("attn.in_proj_weight") || rest.equals("attn.in_proj_bias")) {
                    String suffix = rest.endsWith("weight") ? "weight" : "bias";
                    long c = t.shape()[0] / 3;
                    out.put(p + "self_attn.q_proj." + suffix, Transforms.rows(t, 0, c));
                    out.put(p + "self_attn.k_proj." + suffix, Transforms.rows(t, c, c));
                    out.put(p + "self_attn.v_proj." + suffix, Transforms.rows(t, 2 * c, c));
                } else {
                    String r = VaeKeys.swap(rest, LAYER, true);
                    if (r.equals(rest)) {
                        unmapped.add(k);
                    } else {
                        out.put(p + r, t);
                    }
                }
                continue;
            }
            String top = lookup(k, true);
            if (top != null) {
                out.put(top, t);
            } else if (k.equals("text_projection")) {
                out.put("text_projection.weight", Transforms.transpose(t));
            } else if (!k.equals("logit_scale")) { // the contrastive temperature has no use in a text encoder
                unmapped.add(k);
            }
        }
        return out;
    }

    /** Hugging Face {@code CLIPTextModel(WithProjection)} weights in OpenCLIP naming. */
    public static Map<String, StoredTensor> hfToOpenClip(Map<String, StoredTensor> weights, List<String> unmapped) {
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        Map<String, TreeMap<String, StoredTensor>> fused = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : weights.entrySet()) {
            String k = e.getKey();
            StoredTensor t = e.getValue();
            Matcher m = HF_LAYER.matcher(k);
            if (m.matches()) {
                String p = "transformer.resblocks." + m.group(1) + ".";
                String rest = m.group(2);
                Matcher qkv = HF_QKV.matcher(rest);
                if (qkv.matches()) {
                    String name = p + "attn.in_proj_" + qkv.group(2);
                    fused.computeIfAbsent(name, x -> new TreeMap<>()).put(qkv.group(1), t);
                    out.putIfAbsent(name, null); // keep the position in the output order
                } else {
                    String r = VaeKeys.swap(rest, LAYER, false);
                    if (r.equals(rest)) {
                        unmapped.add(k);
                    } else {
                        out.put(p + r, t);
                    }
                }
                continue;
            }
            String top = lookup(k, false);
            if (top != null) {
                out.put(top, t);
            } else if (k.equals("text_projection.weight")) {
                out.put("text_projection", Transforms.transpose(t));
            } else if (!k.equals("text_model.embeddings.position_ids")) { // a buffer of 0..76
                unmapped.add(k);
            }
        }
        for (Map.Entry<String, TreeMap<String, StoredTensor>> f : fused.entrySet()) {
            TreeMap<String, StoredTensor> parts = f.getValue();
            if (parts.size() != 3) {
                throw new IllegalArgumentException(f.getKey() + ": needs q, k and v projections, found " + parts.keySet());
            }
            // TreeMap order is k, q, v; the fused projection is q, k, v
            out.put(f.getKey(), Transforms.concatRows(List.of(parts.get("q"), parts.get("k"), parts.get("v"))));
        }
        return out;
    }

    private static String lookup(String k, boolean forward) {
        for (String[] r : TOP) {
            if (k.equals(forward ? r[0] : r[1])) {
                return forward ? r[1] : r[0];
            }
        }
        return null;
    }
}
