package dev.jdiffusion.checkpoint.diffusers;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.detect.ModelDetector;
import dev.jdiffusion.checkpoint.detect.ModelFamily;
import dev.jdiffusion.checkpoint.detect.Prediction;
import dev.jdiffusion.checkpoint.keys.ClipKeys;
import dev.jdiffusion.checkpoint.keys.KeyMap;
import dev.jdiffusion.checkpoint.keys.UNetKeys;
import dev.jdiffusion.checkpoint.keys.VaeKeys;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

/**
 * Writes a single-file checkpoint as a diffusers folder: each component's weights in diffusers
 * naming ({@code unet/diffusion_pytorch_model.safetensors}, {@code vae/…},
 * {@code text_encoder/model.safetensors}, {@code text_encoder_2/…}), a {@code model_index.json}
 * and a {@code scheduler/scheduler_config.json} with the prediction type. The folder is built
 * under a temporary name beside the target and renamed at the end, so a failure leaves nothing
 * half-written under the real name. Component {@code config.json} files carry the sizes that can
 * be read from the weights.
 */
public final class DiffusersWriter {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(DiffusersWriter.class);
    private DiffusersWriter() {
    }

    /** Writes {@code c} (single-file naming) to the new folder {@code target}; {@code cast} may map each tensor (or be null). */
    public static void write(Checkpoint c, Path target, UnaryOperator<StoredTensor> cast) throws IOException {
        if (Files.exists(target)) {
            throw new CheckpointFormatException(target + " already exists; choose a new folder for the diffusers output");
        }
        UnaryOperator<StoredTensor> f = cast == null ? UnaryOperator.identity() : cast;
        ModelDetector.ModelInfo info = ModelDetector.detect(c);
        Map<String, StoredTensor> all = c.tensors();
        Path parent = target.toAbsolutePath().getParent();
        Path tmp = Files.createDirectory(parent.resolve("." + target.getFileName() + "." + Long.toHexString(System.nanoTime())));
        boolean done = false;
        try {
            Map<String, Object> index = new LinkedHashMap<>();
            boolean xl = info.family() == ModelFamily.SDXL_BASE || info.family() == ModelFamily.SDXL_REFINER;
            index.put("_class_name", xl ? "StableDiffusionXLPipeline" : "StableDiffusionPipeline");

            Map<String, StoredTensor> unet = strip(all, "model.diffusion_model.");
            KeyMap km = UNetKeys.ldmToDiffusers(unet.keySet());
            requireMapped("unet", km.unmapped());
            Map<String, StoredTensor> hfUnet = new LinkedHashMap<>();
            km.mapped().forEach((k, v) -> hfUnet.put(v, f.apply(unet.get(k))));
            writeComponent(tmp, "unet", "diffusion_pytorch_model.safetensors", hfUnet, unetConfig(hfUnet, xl));
            index.put("unet", List.of("diffusers", "UNet2DConditionModel"));

            Map<String, StoredTensor> vae = strip(all, "first_stage_model.");
            if (!vae.isEmpty()) {
                List<String> um = new ArrayList<>();
                Map<String, StoredTensor> hfVae = new LinkedHashMap<>();
                VaeKeys.ldmToDiffusers(vae, um).forEach((k, v) -> hfVae.put(k, f.apply(v)));
                requireMapped("vae", um);
                writeComponent(tmp, "vae", "diffusion_pytorch_model.safetensors", hfVae, vaeConfig(hfVae));
                index.put("vae", List.of("diffusers", "AutoencoderKL"));
            }
            Map<String, StoredTensor> te1 = strip(all, "cond_stage_model.transformer.");
            te1.putAll(strip(all, "conditioner.embedders.0.transformer."));
            Map<String, StoredTensor> openClip = strip(all, "cond_stage_model.model.");
            Map<String, StoredTensor> bigG = strip(all, "conditioner.embedders.1.model.");
            if (info.family() == ModelFamily.SDXL_REFINER) {
                bigG.putAll(strip(all, "conditioner.embedders.0.model."));
            }
            if (!openClip.isEmpty()) {
                List<String> um = new ArrayList<>();
                te1.putAll(ClipKeys.openClipToHf(openClip, um));
                requireMapped("text_encoder", um);
            }
            if (!te1.isEmpty()) {
                te1.replaceAll((k, v) -> f.apply(v));
                writeComponent(tmp, "text_encoder", "model.safetensors", te1,
                        clipConfig(te1, openClip.isEmpty() ? "quick_gelu" : "gelu"));
                index.put("text_encoder", List.of("transformers", "CLIPTextModel"));
            }
            if (!bigG.isEmpty()) {
                List<String> um = new ArrayList<>();
                Map<String, StoredTensor> hf = ClipKeys.openClipToHf(bigG, um);
                requireMapped("text_encoder_2", um);
                hf.replaceAll((k, v) -> f.apply(v));
                writeComponent(tmp, "text_encoder_2", "model.safetensors", hf, clipConfig(hf, "gelu"));
                index.put("text_encoder_2", List.of("transformers", "CLIPTextModelWithProjection"));
            }
            List<String> dropped = all.keySet().stream().filter(k -> !k.startsWith("model.diffusion_model.")
                    && !k.startsWith("first_stage_model.") && !k.startsWith("cond_stage_model.")
                    && !k.startsWith("conditioner.embedders.")).toList();
            if (!dropped.isEmpty()) {
                // LDM checkpoints carry the training schedule (betas, alphas_cumprod, …) and EMA counters
                LOG.warn("{}: {} tensors belong to no diffusers component and are not written, e.g. {}", c.source(),
                        dropped.size(), dropped.subList(0, Math.min(5, dropped.size())));
            }
            Files.createDirectories(tmp.resolve("scheduler"));
            Map<String, Object> sched = new LinkedHashMap<>();
            sched.put("_class_name", "EulerDiscreteScheduler");
            sched.put("beta_start", 0.00085);
            sched.put("beta_end", 0.012);
            sched.put("beta_schedule", "scaled_linear");
            sched.put("num_train_timesteps", 1000L);
            sched.put("prediction_type", info.prediction() == Prediction.V_PREDICTION ? "v_prediction" : "epsilon");
            writeJson(tmp.resolve("scheduler").resolve("scheduler_config.json"), sched);
            index.put("scheduler", List.of("diffusers", "EulerDiscreteScheduler"));
            writeJson(tmp.resolve("model_index.json"), index);
            Files.move(tmp, target);
            done = true;
        } finally {
            if (!done) {
                deleteTree(tmp);
            }
        }
    }

    private static void requireMapped(String component, List<String> unmapped) throws CheckpointFormatException {
        if (!unmapped.isEmpty()) {
            throw new CheckpointFormatException(component + ": " + unmapped.size()
                    + " weights have no diffusers name, e.g. " + unmapped.subList(0, Math.min(5, unmapped.size())));
        }
    }

    private static Map<String, StoredTensor> strip(Map<String, StoredTensor> all, String prefix) {
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        all.forEach((k, v) -> {
            if (k.startsWith(prefix)) {
                out.put(k.substring(prefix.length()), v);
            }
        });
        return out;
    }

    private static void writeComponent(Path dir, String name, String file, Map<String, StoredTensor> weights,
                                       Map<String, Object> config) throws IOException {
        Path folder = Files.createDirectories(dir.resolve(name));
        SafetensorsWriter.writeStored(folder.resolve(file), weights, Map.of("format", "pt"));
        writeJson(folder.resolve("config.json"), config);
    }

    private static long dim(Map<String, StoredTensor> w, String key, int axis) {
        StoredTensor t = w.get(key);
        return t == null || t.shape().length <= axis ? -1 : t.shape()[axis];
    }

    private static int count(Map<String, StoredTensor> w, String regex) {
        java.util.regex.Pattern p = java.util.regex.Pattern.compile(regex);
        return (int) w.keySet().stream().map(p::matcher).filter(java.util.regex.Matcher::find)
                .map(m -> m.group(1)).distinct().count();
    }

    private static Map<String, Object> unetConfig(Map<String, StoredTensor> w, boolean xl) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("_class_name", "UNet2DConditionModel");
        c.put("in_channels", dim(w, "conv_in.weight", 1));
        c.put("out_channels", dim(w, "conv_out.weight", 0));
        int levels = count(w, "^down_blocks\\.(\\d+)\\.");
        List<Long> channels = new ArrayList<>();
        List<String> down = new ArrayList<>();
        List<String> up = new ArrayList<>();
        for (int l = 0; l < levels; l++) {
            channels.add(dim(w, "down_blocks." + l + ".resnets.0.conv1.weight", 0));
            boolean attn = count(w, "^down_blocks\\." + l + "\\.attentions\\.(\\d+)\\.") > 0;
            down.add(attn ? "CrossAttnDownBlock2D" : "DownBlock2D");
            boolean upAttn = count(w, "^up_blocks\\." + l + "\\.attentions\\.(\\d+)\\.") > 0;
            up.add(upAttn ? "CrossAttnUpBlock2D" : "UpBlock2D");
        }
        c.put("block_out_channels", channels);
        c.put("down_block_types", down);
        c.put("up_block_types", up);
        c.put("layers_per_block", (long) count(w, "^down_blocks\\.0\\.resnets\\.(\\d+)\\."));
        w.entrySet().stream().filter(e -> e.getKey().endsWith("attn2.to_k.weight")).findFirst()
                .ifPresent(e -> c.put("cross_attention_dim", e.getValue().shape()[1]));
        w.entrySet().stream().filter(e -> e.getKey().endsWith(".proj_in.weight")).findFirst()
                .ifPresent(e -> c.put("use_linear_projection", e.getValue().shape().length == 2));
        if (xl) {
            c.put("addition_embed_type", "text_time");
            c.put("projection_class_embeddings_input_dim", dim(w, "add_embedding.linear_1.weight", 1));
        }
        return c;
    }

    private static Map<String, Object> vaeConfig(Map<String, StoredTensor> w) {
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("_class_name", "AutoencoderKL");
        c.put("in_channels", dim(w, "encoder.conv_in.weight", 1));
        c.put("out_channels", dim(w, "decoder.conv_out.weight", 0));
        c.put("latent_channels", dim(w, "decoder.conv_in.weight", 1));
        int levels = count(w, "^encoder\\.down_blocks\\.(\\d+)\\.");
        List<Long> channels = new ArrayList<>();
        for (int l = 0; l < levels; l++) {
            channels.add(dim(w, "encoder.down_blocks." + l + ".resnets.0.conv2.weight", 0));
        }
        c.put("block_out_channels", channels);
        c.put("layers_per_block", (long) count(w, "^encoder\\.down_blocks\\.0\\.resnets\\.(\\d+)\\."));
        return c;
    }

    private static Map<String, Object> clipConfig(Map<String, StoredTensor> w, String act) {
        Map<String, Object> c = new LinkedHashMap<>();
        long width = dim(w, "text_model.embeddings.token_embedding.weight", 1);
        c.put("hidden_size", width);
        c.put("vocab_size", dim(w, "text_model.embeddings.token_embedding.weight", 0));
        c.put("max_position_embeddings", dim(w, "text_model.embeddings.position_embedding.weight", 0));
        c.put("num_hidden_layers", (long) count(w, "^text_model\\.encoder\\.layers\\.(\\d+)\\."));
        c.put("intermediate_size", dim(w, "text_model.encoder.layers.0.mlp.fc1.weight", 0));
        c.put("num_attention_heads", Math.max(1, width / 64));
        c.put("hidden_act", act);
        if (w.containsKey("text_projection.weight")) {
            c.put("projection_dim", dim(w, "text_projection.weight", 0));
        }
        return c;
    }

    static void writeJson(Path file, Map<String, Object> value) throws IOException {
        Files.writeString(file, toJson(value, "") + "\n", StandardCharsets.UTF_8);
    }

    private static String toJson(Object v, String indent) {
        if (v instanceof Map<?, ?> m) {
            StringBuilder b = new StringBuilder("{\n");
            int i = 0;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                b.append(indent).append("  \"").append(e.getKey()).append("\": ")
                        .append(toJson(e.getValue(), indent + "  ")).append(++i < m.size() ? ",\n" : "\n");
            }
            return b.append(indent).append('}').toString();
        }
        if (v instanceof List<?> l) {
            return "[" + String.join(", ", l.stream().map(x -> toJson(x, indent)).toList()) + "]";
        }
        if (v instanceof String s) {
            return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }
        return String.valueOf(v);
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
