package dev.jdiffusion.pipeline;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The generation parameters in AUTOMATIC1111's text format (the PNG "parameters" chunk): the prompt,
 * a "Negative prompt:" line when there is one, then "Key: value" pairs separated by ", " in A1111's
 * order, values quoted as JSON strings when they contain a comma, colon or line break.
 */
public final class InfoText {
    private InfoText() {
    }

    static String format(GenerationRequest r, long seed, String sampler, String schedule, String model) {
        Map<String, String> kv = new LinkedHashMap<>();
        kv.put("Steps", Integer.toString(r.steps()));
        kv.put("Sampler", sampler);
        kv.put("Schedule type", schedule);
        kv.put("CFG scale", number(r.cfgScale()));
        kv.put("Seed", Long.toString(seed));
        kv.put("Size", r.width() + "x" + r.height());
        kv.put("Model", model);
        if (r.isImg2Img()) {
            kv.put("Denoising strength", number(r.denoisingStrength()));
            kv.put("Denoising rule", switch (r.strengthRule()) {
                case A1111 -> "A1111";
                case A1111_FIXED_STEPS -> "A1111 fixed steps";
                case COMFYUI -> "ComfyUI";
                case DIFFUSERS -> "diffusers";
            });
        }
        if (r.clipSkip() > 1) {
            kv.put("Clip skip", Integer.toString(r.clipSkip()));
        }
        switch (r.rng()) {
            case TORCH_CPU -> kv.put("RNG", "CPU");
            case OWN -> kv.put("RNG", "jdiffusion");
            default -> {
            }
        }
        switch (r.emphasis()) {
            case NO_NORM -> kv.put("Emphasis", "No norm");
            case NONE -> kv.put("Emphasis", "None");
            case RELATIVE_TO_EMPTY -> kv.put("Emphasis", "Relative to empty prompt");
            default -> {
            }
        }
        StringBuilder b = new StringBuilder(r.prompt());
        if (!r.negativePrompt().isEmpty()) {
            b.append("\nNegative prompt: ").append(r.negativePrompt());
        }
        b.append('\n');
        boolean first = true;
        for (Map.Entry<String, String> e : kv.entrySet()) {
            b.append(first ? "" : ", ").append(e.getKey()).append(": ").append(quote(e.getValue()));
            first = false;
        }
        return b.toString();
    }

    /** Integral values without a fraction ("7"), others as the shortest decimal ("7.5", "0.75"). */
    static String number(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }

    /** A1111's {@code quote}: as is, unless it holds ',', ':' or a line break; then a JSON string. */
    static String quote(String s) {
        if (s.indexOf(',') < 0 && s.indexOf(':') < 0 && s.indexOf('\n') < 0) {
            return s;
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20 || c > 0x7E) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
