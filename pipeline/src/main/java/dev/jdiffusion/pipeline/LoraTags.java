package dev.jdiffusion.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A1111's LoRA tags in a prompt: {@code <lora:name>}, {@code <lora:name:0.8>} (one strength for the
 * text encoder and the UNet), {@code <lora:name:0.5:1.0>} (text encoder, then UNet), or named
 * {@code te=0.5} / {@code unet=1.0}; {@code <lyco:…>} alike. The tags are taken out of the prompt
 * before it is encoded, as A1111 does.
 */
public final class LoraTags {
    /** One tag: the LoRA's file name (without extension) and its strengths. */
    public record Tag(String name, double textEncoderStrength, double unetStrength) {
    }

    /** The prompt without its LoRA tags, and the tags in order. */
    public record Parsed(String prompt, List<Tag> tags) {
    }

    private static final Pattern TAG = Pattern.compile("<(lora|lyco):([^>]+)>");

    private LoraTags() {
    }

    public static Parsed parse(String prompt) {
        List<Tag> tags = new ArrayList<>();
        Matcher m = TAG.matcher(prompt);
        StringBuilder rest = new StringBuilder();
        while (m.find()) {
            String[] items = m.group(2).split(":");
            String name = items[0].strip();
            if (name.isEmpty()) {
                throw new IllegalArgumentException("a LoRA tag without a name: " + m.group());
            }
            Double te = null;
            Double unet = null;
            int positional = 0;
            for (int i = 1; i < items.length; i++) {
                String item = items[i].strip();
                try {
                    if (item.startsWith("te=")) {
                        te = Double.parseDouble(item.substring(3));
                    } else if (item.startsWith("unet=")) {
                        unet = Double.parseDouble(item.substring(5));
                    } else if (item.startsWith("dyn=")) {
                        throw new IllegalArgumentException("LoRA tag " + m.group() + ": dyn= (a lowered rank) is not supported");
                    } else if (positional == 0) {
                        te = Double.parseDouble(item);
                        positional++;
                    } else if (positional == 1) {
                        unet = Double.parseDouble(item);
                        positional++;
                    } else {
                        throw new IllegalArgumentException("LoRA tag " + m.group() + " has more strengths than text encoder"
                                + " and UNet");
                    }
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("LoRA tag " + m.group() + ": \"" + item + "\" is not a strength", e);
                }
            }
            double teStrength = te == null ? 1 : te;
            double unetStrength = unet == null ? teStrength : unet;
            if (!Double.isFinite(teStrength) || !Double.isFinite(unetStrength)) {
                throw new IllegalArgumentException("LoRA tag " + m.group() + ": strengths must be finite numbers");
            }
            tags.add(new Tag(name, teStrength, unetStrength));
            m.appendReplacement(rest, "");
        }
        m.appendTail(rest);
        return new Parsed(rest.toString(), tags);
    }
}
