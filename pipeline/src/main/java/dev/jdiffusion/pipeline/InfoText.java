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

    static String format(GenerationRequest r, long seed, String sampler, String schedule, String model,
                         Map<String, String> extra) {
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
        if (r.cfgRescale() > 0) {
            kv.put("CFG Rescale phi", number(r.cfgRescale()));
        }
        if (r.zeroTerminalSnr()) {
            kv.put("Noise Schedule", "Zero Terminal SNR");
        }
        if (r.prediction() != null) {
            kv.put("Prediction", r.prediction() == dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION
                    ? "v" : "eps");
        }
        kv.putAll(extra);
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

    /** Settings read back from a parameters text: the prompt, the negative prompt and the key/value pairs in order. */
    public record Parsed(String prompt, String negativePrompt, Map<String, String> values) {
        public String get(String key) {
            return values.get(key);
        }
    }

    private static final java.util.regex.Pattern PARAM =
            java.util.regex.Pattern.compile("\\s*(\\w[\\w \\-/]+):\\s*(\"(?:\\\\.|[^\\\\\"])+\"|[^,]*)(?:,|$)");

    /**
     * Parses A1111's parameters text (as {@code parse_generation_parameters} does): the last line is
     * the "Key: value" list when it holds at least three pairs; the lines before it are the prompt,
     * then from a line starting with "Negative prompt:" the negative prompt. Quoted values are JSON
     * strings.
     */
    public static Parsed parse(String text) {
        String[] lines = text.strip().split("\n", -1);
        String last = lines[lines.length - 1].strip();
        Map<String, String> values = new LinkedHashMap<>();
        java.util.regex.Matcher m = PARAM.matcher(last);
        int pairs = 0;
        while (m.find()) {
            if (m.group(1) == null) {
                continue;
            }
            pairs++;
            values.put(m.group(1).strip(), unquote(m.group(2).strip()));
        }
        int promptLines = lines.length;
        if (pairs >= 3) {
            promptLines--;
        } else {
            values.clear();
        }
        StringBuilder prompt = new StringBuilder();
        StringBuilder negative = null;
        for (int i = 0; i < promptLines; i++) {
            String line = lines[i].strip();
            if (line.startsWith("Negative prompt:")) {
                negative = new StringBuilder(line.substring("Negative prompt:".length()).strip());
            } else if (negative != null) {
                negative.append('\n').append(line);
            } else {
                prompt.append(prompt.isEmpty() ? "" : "\n").append(line);
            }
        }
        return new Parsed(prompt.toString(), negative == null ? "" : negative.toString(), values);
    }

    /** A JSON string's value, or the text itself when it is not quoted. */
    static String unquote(String v) {
        if (v.length() < 2 || !v.startsWith("\"") || !v.endsWith("\"")) {
            return v;
        }
        Object o = dev.jdiffusion.core.json.Json.parse(v);
        return o instanceof String s ? s : v;
    }

    /**
     * A request for the same image: prompt, negative prompt, steps, sampler (an old combined name such
     * as "DPM++ 2M Karras" is split into sampler and schedule), schedule, CFG scale, seed, size, clip
     * skip and RNG; what the text does not say keeps A1111's default.
     */
    public static GenerationRequest.Builder toRequest(Parsed p) {
        GenerationRequest.Builder b = GenerationRequest.builder(p.prompt()).negativePrompt(p.negativePrompt());
        try {
            if (p.get("Steps") != null) {
                b.steps(Integer.parseInt(p.get("Steps")));
            }
            if (p.get("CFG scale") != null) {
                b.cfgScale(Double.parseDouble(p.get("CFG scale")));
            }
            if (p.get("Seed") != null) {
                b.seed(Long.parseLong(p.get("Seed")));
            }
            if (p.get("Size") != null) {
                String[] wh = p.get("Size").split("x");
                b.size(Integer.parseInt(wh[0].strip()), Integer.parseInt(wh[1].strip()));
            }
            if (p.get("Clip skip") != null) {
                b.clipSkip(Integer.parseInt(p.get("Clip skip")));
            }
            if (p.get("CFG Rescale phi") != null) {
                b.cfgRescale(Double.parseDouble(p.get("CFG Rescale phi")));
            }
            if (p.get("Refiner switch at") != null) {
                b.refinerSwitchAt(Double.parseDouble(p.get("Refiner switch at")));
            }
        } catch (NumberFormatException | ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("unreadable parameters: " + p.values() + " (" + e.getMessage() + ")", e);
        }
        if (p.get("Sampler") != null) {
            dev.jdiffusion.samplers.SamplerNames.Resolved s = dev.jdiffusion.samplers.SamplerNames.resolve(p.get("Sampler"));
            b.sampler(s.name());
            if (s.schedule() != null) {
                b.scheduler(s.schedule());
            }
        }
        if (p.get("Schedule type") != null) {
            b.scheduler(p.get("Schedule type"));
        }
        b.zeroTerminalSnr("Zero Terminal SNR".equals(p.get("Noise Schedule")));
        if (p.get("Prediction") != null) {
            b.prediction(p.get("Prediction").equals("v") ? dev.jdiffusion.samplers.DiffusionModel.Parameterization.V_PREDICTION
                    : dev.jdiffusion.samplers.DiffusionModel.Parameterization.EPSILON);
        }
        if (p.get("RNG") != null) {
            b.rng(switch (p.get("RNG")) {
                case "CPU" -> dev.jdiffusion.samplers.SeededNoise.Generator.TORCH_CPU;
                case "jdiffusion" -> dev.jdiffusion.samplers.SeededNoise.Generator.OWN;
                default -> dev.jdiffusion.samplers.SeededNoise.Generator.PHILOX;
            });
        }
        return b;
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
