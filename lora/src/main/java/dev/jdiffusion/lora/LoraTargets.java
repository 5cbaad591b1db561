package dev.jdiffusion.lora;

import dev.jdiffusion.checkpoint.keys.UNetKeys;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which model weight each adapter module name changes, for a model's weights in single-file naming
 * (SD 1.x, 2.x, SDXL): every layer gets its names in every adapter naming, and a file's modules are
 * looked up in that table (names are never split at underscores, which layer names contain).
 * <ul>
 *   <li>UNet: kohya {@code lora_unet_} + the diffusers path with {@code _} for {@code .} (SD 1.x/2.x),
 *   or the single-file path likewise (kohya's SDXL files); diffusers/PEFT {@code unet.} + the
 *   diffusers path, or that path alone (attention-processor files);</li>
 *   <li>text encoders: kohya {@code lora_te_} (SD 1.x/2.x), {@code lora_te1_}/{@code lora_te2_}
 *   (SDXL) + the Hugging Face path ({@code text_model.encoder.layers.0.self_attn.q_proj}), PEFT
 *   {@code text_encoder.}/{@code text_encoder_2.} + that path. OpenCLIP encoders (SD 2.x, SDXL's
 *   second) keep q, k and v in one fused {@code in_proj_weight}; their modules target its thirds.</li>
 * </ul>
 */
public final class LoraTargets {
    /** The network a weight belongs to (LoRA strengths are given per network). */
    public enum Part { UNET, TEXT_ENCODER }

    /**
     * A layer an adapter module changes: its weight key (and bias key), the rows of the weight it
     * owns ({@code rows} −1: all; a third of a fused q/k/v projection otherwise) and the network.
     */
    public record Target(String weightKey, String biasKey, int rowFrom, int rows, Part part) {
    }

    private static final String UNET = "model.diffusion_model.";
    private static final String[][] HF_TEXT = {
        {"cond_stage_model.transformer.", "lora_te_", "text_encoder."},
        {"conditioner.embedders.0.transformer.", "lora_te1_", "text_encoder."},
    };
    private static final String[][] OPEN_CLIP_TEXT = {
        {"cond_stage_model.model.", "lora_te_", "text_encoder."},
        {"conditioner.embedders.1.model.", "lora_te2_", "text_encoder_2."},
    };
    private static final Pattern OC_LAYER = Pattern.compile("^transformer\\.resblocks\\.(\\d+)\\.(.*)$");
    private static final String[][] OC_NAMES = {
        {"attn.out_proj", "self_attn.out_proj"}, {"mlp.c_fc", "mlp.fc1"}, {"mlp.c_proj", "mlp.fc2"},
    };

    private final Map<String, Target> byName;
    /** The name kohya's scripts give each layer (diffusers paths for SD 1.x/2.x UNets, single-file paths for SDXL's). */
    private final Map<Target, String> kohya;

    private LoraTargets(Map<String, Target> byName, Map<Target, String> kohya) {
        this.byName = byName;
        this.kohya = kohya;
    }

    /** Every layer an adapter can change, each with the name kohya's scripts give it. */
    public Map<Target, String> kohyaNames() {
        return java.util.Collections.unmodifiableMap(kohya);
    }

    /** The table for a model whose weights have these keys (and these shapes, for the fused projections' rows). */
    public static LoraTargets of(Map<String, int[]> shapes) {
        Map<String, Target> t = new HashMap<>();
        Map<Target, String> kohya = new java.util.LinkedHashMap<>();
        boolean sdxl = shapes.keySet().stream().anyMatch(k -> k.startsWith("conditioner.embedders."));
        List<String> unet = new ArrayList<>();
        for (String k : shapes.keySet()) {
            if (k.startsWith(UNET)) {
                unet.add(k.substring(UNET.length()));
            }
        }
        Map<String, String> diffusers = UNetKeys.ldmToDiffusers(unet).mapped();
        for (String k : unet) {
            if (!k.endsWith(".weight")) {
                continue;
            }
            String layer = k.substring(0, k.length() - ".weight".length());
            Target target = new Target(UNET + k, bias(shapes, UNET + layer + ".bias"), 0, -1, Part.UNET);
            t.put("lora_unet_" + layer.replace('.', '_'), target);
            String d = diffusers.get(k);
            if (d != null) {
                String dl = d.substring(0, d.length() - ".weight".length());
                t.put("lora_unet_" + dl.replace('.', '_'), target);
                t.put("unet." + dl, target);
                t.put(dl, target);
            }
            kohya.put(target, "lora_unet_" + (sdxl || d == null ? layer : d.substring(0, d.length() - ".weight".length()))
                    .replace('.', '_'));
        }
        for (String[] enc : HF_TEXT) {
            for (String k : shapes.keySet()) {
                if (k.startsWith(enc[0]) && k.endsWith(".weight")) {
                    String path = k.substring(enc[0].length(), k.length() - ".weight".length());
                    Target target = new Target(k, bias(shapes, enc[0] + path + ".bias"), 0, -1, Part.TEXT_ENCODER);
                    t.put(enc[1] + path.replace('.', '_'), target);
                    t.put(enc[2] + path, target);
                    kohya.put(target, enc[1] + path.replace('.', '_'));
                }
            }
        }
        for (String[] enc : OPEN_CLIP_TEXT) {
            for (String k : shapes.keySet()) {
                if (!k.startsWith(enc[0])) {
                    continue;
                }
                Matcher m = OC_LAYER.matcher(k.substring(enc[0].length()));
                if (!m.matches()) {
                    continue;
                }
                String hf = "text_model.encoder.layers." + m.group(1) + ".";
                if (m.group(2).equals("attn.in_proj_weight")) {
                    int d = shapes.get(k)[1];
                    String bias = bias(shapes, k.replace("in_proj_weight", "in_proj_bias"));
                    String[] qkv = {"q_proj", "k_proj", "v_proj"};
                    for (int i = 0; i < 3; i++) {
                        Target target = new Target(k, bias, i * d, d, Part.TEXT_ENCODER);
                        String path = hf + "self_attn." + qkv[i];
                        t.put(enc[1] + path.replace('.', '_'), target);
                        t.put(enc[2] + path, target);
                        kohya.put(target, enc[1] + path.replace('.', '_'));
                    }
                    continue;
                }
                for (String[] n : OC_NAMES) {
                    if (m.group(2).equals(n[0] + ".weight")) {
                        String layer = k.substring(0, k.length() - ".weight".length());
                        Target target = new Target(k, bias(shapes, layer + ".bias"), 0, -1, Part.TEXT_ENCODER);
                        String path = hf + n[1];
                        t.put(enc[1] + path.replace('.', '_'), target);
                        t.put(enc[2] + path, target);
                        kohya.put(target, enc[1] + path.replace('.', '_'));
                    }
                }
            }
        }
        return new LoraTargets(t, kohya);
    }

    private static String bias(Map<String, int[]> shapes, String key) {
        return shapes.containsKey(key) ? key : null;
    }

    /** The layer an adapter module changes, or null when it names none of this model's layers. */
    public Target target(String moduleName) {
        return byName.get(moduleName);
    }

    /** The names of a file's modules that name no layer of this model, in the file's order. */
    public List<String> unmatched(Collection<String> moduleNames) {
        return moduleNames.stream().filter(n -> !byName.containsKey(n)).toList();
    }
}
