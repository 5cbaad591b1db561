package dev.jdiffusion.checkpoint.keys;

import dev.jdiffusion.checkpoint.StoredTensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * VAE weights between the single-file (LDM {@code AutoencoderKL}: {@code encoder.down.i.block.j},
 * {@code decoder.up.i}, {@code mid.attn_1}) and the diffusers layout ({@code down_blocks},
 * {@code up_blocks} in reverse order, {@code mid_block.attentions.0}). The mid-block attention's
 * q/k/v/out projections are 1×1 convolutions in one and linear layers in the other, so their
 * weights are reshaped too. Names are given without the {@code first_stage_model.} / {@code vae.}
 * prefixes. Older diffusers attention names ({@code query}, {@code key}, {@code value},
 * {@code proj_attn}) are read as well.
 */
public final class VaeKeys {
    private static final Pattern LDM = Pattern.compile(
            "^(encoder|decoder)\\.(?:(down|up)\\.(\\d+)\\.(block\\.(\\d+)|downsample|upsample)\\.|mid\\.(block_1|block_2|attn_1)\\.)(.*)$");
    private static final Pattern HF = Pattern.compile(
            "^(encoder|decoder)\\.(?:(down_blocks|up_blocks)\\.(\\d+)\\.(resnets\\.(\\d+)|downsamplers\\.0|upsamplers\\.0)\\.|mid_block\\.(resnets\\.0|resnets\\.1|attentions\\.0)\\.)(.*)$");
    private static final String[][] ATTN = {
        {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
    };
    private static final String[][] ATTN_OLD = {
        {"q.", "query."}, {"k.", "key."}, {"v.", "value."}, {"proj_out.", "proj_attn."},
    };

    private VaeKeys() {
    }

    private static int levels(Map<String, StoredTensor> weights, String pattern) {
        Pattern p = Pattern.compile(pattern);
        int n = 0;
        for (String k : weights.keySet()) {
            Matcher m = p.matcher(k);
            if (m.find()) {
                n = Math.max(n, Integer.parseInt(m.group(1)) + 1);
            }
        }
        return n;
    }

    /** Single-file VAE weights renamed (and attention weights reshaped) for diffusers. */
    public static Map<String, StoredTensor> ldmToDiffusers(Map<String, StoredTensor> weights, List<String> unmapped) {
        int n = levels(weights, "^decoder\\.up\\.(\\d+)\\.");
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : weights.entrySet()) {
            String k = e.getKey();
            StoredTensor t = e.getValue();
            Matcher m = LDM.matcher(k);
            String name;
            if (m.matches()) {
                String rest = m.group(7);
                if (m.group(2) != null) {
                    int i = Integer.parseInt(m.group(3));
                    boolean isDown = m.group(2).equals("down");
                    String block = isDown ? "down_blocks." + i : "up_blocks." + (n - 1 - i);
                    String sub = m.group(5) != null ? "resnets." + m.group(5)
                            : isDown ? "downsamplers.0" : "upsamplers.0";
                    name = m.group(1) + "." + block + "." + sub + "." + resnetRest(rest, true);
                } else if (m.group(6).equals("attn_1")) {
                    String r = swap(rest, ATTN, true);
                    name = m.group(1) + ".mid_block.attentions.0." + r;
                    if (!r.startsWith("group_norm.") && t.shape().length == 4) {
                        long[] s = t.shape();
                        t = Transforms.reshape(t, s[0], s[1]);
                    }
                } else {
                    name = m.group(1) + ".mid_block.resnets." + (m.group(6).equals("block_1") ? 0 : 1) + "."
                            + resnetRest(rest, true);
                }
            } else if (k.matches("^(encoder|decoder)\\.norm_out\\..*")) {
                name = k.replace(".norm_out.", ".conv_norm_out.");
            } else if (k.matches("^((encoder|decoder)\\.(conv_in|conv_out)|quant_conv|post_quant_conv)\\..*")) {
                name = k;
            } else {
                unmapped.add(k);
                continue;
            }
            out.put(name, t);
        }
        return out;
    }

    /** Diffusers VAE weights renamed (and attention weights reshaped) for the single-file layout. */
    public static Map<String, StoredTensor> diffusersToLdm(Map<String, StoredTensor> weights, List<String> unmapped) {
        int n = levels(weights, "^decoder\\.up_blocks\\.(\\d+)\\.");
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : weights.entrySet()) {
            String k = e.getKey();
            StoredTensor t = e.getValue();
            Matcher m = HF.matcher(k);
            String name;
            if (m.matches()) {
                String rest = m.group(7);
                if (m.group(2) != null) {
                    int i = Integer.parseInt(m.group(3));
                    boolean isDown = m.group(2).equals("down_blocks");
                    String block = isDown ? "down." + i : "up." + (n - 1 - i);
                    String sub = m.group(5) != null ? "block." + m.group(5) : isDown ? "downsample" : "upsample";
                    name = m.group(1) + "." + block + "." + sub + "." + resnetRest(rest, false);
                } else if (m.group(6).equals("attentions.0")) {
                    String r = swap(swap(rest, ATTN_OLD, false), ATTN, false);
                    name = m.group(1) + ".mid.attn_1." + r;
                    if (!r.startsWith("norm.") && t.shape().length == 2) {
                        long[] s = t.shape();
                        t = Transforms.reshape(t, s[0], s[1], 1, 1);
                    }
                } else {
                    name = m.group(1) + ".mid.block_" + (m.group(6).equals("resnets.0") ? 1 : 2) + "."
                            + resnetRest(rest, false);
                }
            } else if (k.matches("^(encoder|decoder)\\.conv_norm_out\\..*")) {
                name = k.replace(".conv_norm_out.", ".norm_out.");
            } else if (k.matches("^((encoder|decoder)\\.(conv_in|conv_out)|quant_conv|post_quant_conv)\\..*")) {
                name = k;
            } else {
                unmapped.add(k);
                continue;
            }
            out.put(name, t);
        }
        return out;
    }

    private static String resnetRest(String rest, boolean fromLdm) {
        String a = fromLdm ? "nin_shortcut." : "conv_shortcut.";
        String b = fromLdm ? "conv_shortcut." : "nin_shortcut.";
        return rest.startsWith(a) ? b + rest.substring(a.length()) : rest;
    }

    /** Replaces the leading name of {@code rest} by its counterpart in {@code table}. */
    static String swap(String rest, String[][] table, boolean forward) {
        for (String[] r : table) {
            String from = forward ? r[0] : r[1];
            if (rest.startsWith(from)) {
                return (forward ? r[1] : r[0]) + rest.substring(from.length());
            }
        }
        return rest;
    }
}
