package dev.jdiffusion.checkpoint.keys;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * UNet weight names between the single-file (LDM/SGM {@code UNetModel}: {@code input_blocks},
 * {@code middle_block}, {@code output_blocks}) and the diffusers ({@code UNet2DConditionModel}:
 * {@code down_blocks}, {@code mid_block}, {@code up_blocks}) layouts, for SD 1.x, SD 2.x and SDXL.
 *
 * <p>The block structure (levels, res blocks per level, where attention and resampling sit) is read
 * from the names themselves, so pruned and tiny models map like full ones. Names are given without
 * the {@code model.diffusion_model.} / {@code unet.} prefixes. Tensor layouts are identical in both
 * namings; only names change.
 */
public final class UNetKeys {
    private static final String[][] RESNET = {
        {"in_layers.0.", "norm1."}, {"in_layers.2.", "conv1."}, {"out_layers.0.", "norm2."},
        {"out_layers.3.", "conv2."}, {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
    };
    private static final String[][] SINGLES = {
        {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
        {"label_emb.0.0.", "add_embedding.linear_1."}, {"label_emb.0.2.", "add_embedding.linear_2."},
        {"input_blocks.0.0.", "conv_in."}, {"out.0.", "conv_norm_out."}, {"out.2.", "conv_out."},
    };
    private static final Pattern LDM_BLOCK = Pattern.compile("^(input_blocks|output_blocks)\\.(\\d+)\\.(\\d+)\\.(.*)$");
    private static final Pattern LDM_MID = Pattern.compile("^middle_block\\.(\\d+)\\.(.*)$");
    private static final Pattern HF_BLOCK = Pattern.compile(
            "^(down_blocks|up_blocks)\\.(\\d+)\\.(resnets|attentions|downsamplers|upsamplers)\\.(\\d+)\\..*$");
    private static final Pattern HF_MID = Pattern.compile("^mid_block\\.(resnets|attentions)\\.(\\d+)\\..*$");

    private UNetKeys() {
    }

    /** One level of the UNet: its res blocks, which of them carry attention, and whether it resamples. */
    private record Level(int resnets, TreeSet<Integer> attentions, boolean resample) {
    }

    private record Layout(List<Level> down, List<Level> up, boolean midAttention) {
    }

    /** A prefix in one naming, its counterpart in the other, and whether the inside is a res block. */
    private record Pair(String ldm, String hf, boolean resnet) {
    }

    /** Maps single-file UNet names to diffusers names. */
    public static KeyMap ldmToDiffusers(Collection<String> keys) {
        return rename(keys, pairs(layoutFromLdm(keys)), true);
    }

    /** Maps diffusers UNet names to single-file names. */
    public static KeyMap diffusersToLdm(Collection<String> keys) {
        return rename(keys, pairs(layoutFromDiffusers(keys)), false);
    }

    private static Layout layoutFromLdm(Collection<String> keys) {
        TreeMap<Integer, TreeMap<Integer, String>> in = new TreeMap<>();
        TreeMap<Integer, TreeMap<Integer, String>> out = new TreeMap<>();
        boolean midAttention = false;
        for (String k : keys) {
            Matcher m = LDM_BLOCK.matcher(k);
            if (m.matches()) {
                (m.group(1).equals("input_blocks") ? in : out)
                        .computeIfAbsent(Integer.parseInt(m.group(2)), x -> new TreeMap<>())
                        .merge(Integer.parseInt(m.group(3)), kind(m.group(4)), (a, b) -> a.equals("other") ? b : a);
            }
            Matcher mid = LDM_MID.matcher(k);
            if (mid.matches() && kind(mid.group(2)).equals("attention")) {
                midAttention = true;
            }
        }
        List<Level> down = new ArrayList<>();
        int resnets = 0;
        TreeSet<Integer> attn = new TreeSet<>();
        for (Map.Entry<Integer, TreeMap<Integer, String>> b : in.entrySet()) {
            if (b.getKey() == 0) {
                continue;
            }
            if ("down".equals(b.getValue().get(0))) {
                down.add(new Level(resnets, attn, true));
                resnets = 0;
                attn = new TreeSet<>();
            } else {
                if ("attention".equals(b.getValue().get(1))) {
                    attn.add(resnets);
                }
                resnets++;
            }
        }
        if (resnets > 0 || !attn.isEmpty()) {
            down.add(new Level(resnets, attn, false));
        }
        List<Level> up = new ArrayList<>();
        int levels = down.size();
        if (levels > 0 && !out.isEmpty()) {
            int perLevel = out.size() / levels;
            for (int l = 0; l < levels; l++) {
                TreeSet<Integer> ua = new TreeSet<>();
                boolean resample = false;
                for (int j = 0; j < perLevel; j++) {
                    TreeMap<Integer, String> b = out.getOrDefault(l * perLevel + j, new TreeMap<>());
                    if ("attention".equals(b.get(1))) {
                        ua.add(j);
                    }
                    resample |= b.containsValue("up");
                }
                up.add(new Level(perLevel, ua, resample));
            }
        }
        return new Layout(down, up, midAttention);
    }

    private static String kind(String rest) {
        if (rest.startsWith("in_layers.") || rest.startsWith("out_layers.") || rest.startsWith("emb_layers.")
                || rest.startsWith("skip_connection.")) {
            return "resnet";
        }
        if (rest.startsWith("op.")) {
            return "down";
        }
        if (rest.startsWith("conv.")) {
            return "up";
        }
        if (rest.startsWith("transformer_blocks.") || rest.startsWith("proj_in.") || rest.startsWith("proj_out.")
                || rest.startsWith("norm.")) {
            return "attention";
        }
        return "other";
    }

    private static Layout layoutFromDiffusers(Collection<String> keys) {
        TreeMap<Integer, int[]> downCount = new TreeMap<>();
        TreeMap<Integer, int[]> upCount = new TreeMap<>();
        Map<Integer, TreeSet<Integer>> downAttn = new TreeMap<>();
        Map<Integer, TreeSet<Integer>> upAttn = new TreeMap<>();
        Map<Integer, Boolean> downSample = new TreeMap<>();
        Map<Integer, Boolean> upSample = new TreeMap<>();
        boolean midAttention = false;
        for (String k : keys) {
            Matcher m = HF_BLOCK.matcher(k);
            if (m.matches()) {
                boolean isDown = m.group(1).equals("down_blocks");
                int level = Integer.parseInt(m.group(2));
                int j = Integer.parseInt(m.group(4));
                int[] count = (isDown ? downCount : upCount).computeIfAbsent(level, x -> new int[1]);
                (isDown ? downSample : upSample).putIfAbsent(level, false);
                switch (m.group(3)) {
                    case "resnets", "attentions" -> {
                        count[0] = Math.max(count[0], j + 1);
                        if (m.group(3).equals("attentions")) {
                            (isDown ? downAttn : upAttn).computeIfAbsent(level, x -> new TreeSet<>()).add(j);
                        }
                    }
                    default -> (isDown ? downSample : upSample).put(level, true);
                }
            }
            Matcher mid = HF_MID.matcher(k);
            if (mid.matches() && mid.group(1).equals("attentions")) {
                midAttention = true;
            }
        }
        List<Level> down = new ArrayList<>();
        for (int l : downCount.keySet()) {
            down.add(new Level(downCount.get(l)[0], downAttn.getOrDefault(l, new TreeSet<>()), downSample.get(l)));
        }
        List<Level> up = new ArrayList<>();
        for (int l : upCount.keySet()) {
            up.add(new Level(upCount.get(l)[0], upAttn.getOrDefault(l, new TreeSet<>()), upSample.get(l)));
        }
        return new Layout(down, up, midAttention);
    }

    private static List<Pair> pairs(Layout layout) {
        List<Pair> pairs = new ArrayList<>();
        for (String[] s : SINGLES) {
            pairs.add(new Pair(s[0], s[1], false));
        }
        int idx = 1;
        for (int l = 0; l < layout.down().size(); l++) {
            Level level = layout.down().get(l);
            for (int j = 0; j < level.resnets(); j++) {
                pairs.add(new Pair("input_blocks." + idx + ".0.", "down_blocks." + l + ".resnets." + j + ".", true));
                if (level.attentions().contains(j)) {
                    pairs.add(new Pair("input_blocks." + idx + ".1.", "down_blocks." + l + ".attentions." + j + ".", false));
                }
                idx++;
            }
            if (level.resample()) {
                pairs.add(new Pair("input_blocks." + idx + ".0.op.", "down_blocks." + l + ".downsamplers.0.conv.", false));
                idx++;
            }
        }
        pairs.add(new Pair("middle_block.0.", "mid_block.resnets.0.", true));
        if (layout.midAttention()) {
            pairs.add(new Pair("middle_block.1.", "mid_block.attentions.0.", false));
            pairs.add(new Pair("middle_block.2.", "mid_block.resnets.1.", true));
        } else {
            pairs.add(new Pair("middle_block.1.", "mid_block.resnets.1.", true));
        }
        idx = 0;
        for (int l = 0; l < layout.up().size(); l++) {
            Level level = layout.up().get(l);
            for (int j = 0; j < level.resnets(); j++) {
                pairs.add(new Pair("output_blocks." + idx + ".0.", "up_blocks." + l + ".resnets." + j + ".", true));
                boolean attn = level.attentions().contains(j);
                if (attn) {
                    pairs.add(new Pair("output_blocks." + idx + ".1.", "up_blocks." + l + ".attentions." + j + ".", false));
                }
                if (level.resample() && j == level.resnets() - 1) {
                    pairs.add(new Pair("output_blocks." + idx + "." + (attn ? 2 : 1) + ".",
                            "up_blocks." + l + ".upsamplers.0.", false));
                }
                idx++;
            }
        }
        return pairs;
    }

    private static KeyMap rename(Collection<String> keys, List<Pair> pairs, boolean fromLdm) {
        Map<String, String> mapped = new LinkedHashMap<>();
        List<String> unmapped = new ArrayList<>();
        for (String k : keys) {
            Pair best = null;
            for (Pair p : pairs) {
                String from = fromLdm ? p.ldm() : p.hf();
                if (k.startsWith(from) && (best == null || from.length() > (fromLdm ? best.ldm() : best.hf()).length())) {
                    best = p;
                }
            }
            if (best == null) {
                unmapped.add(k);
                continue;
            }
            String from = fromLdm ? best.ldm() : best.hf();
            String rest = k.substring(from.length());
            if (best.resnet()) {
                for (String[] r : RESNET) {
                    String a = fromLdm ? r[0] : r[1];
                    if (rest.startsWith(a)) {
                        rest = (fromLdm ? r[1] : r[0]) + rest.substring(a.length());
                        break;
                    }
                }
            }
            mapped.put(k, (fromLdm ? best.hf() : best.ldm()) + rest);
        }
        return new KeyMap(mapped, unmapped);
    }
}
