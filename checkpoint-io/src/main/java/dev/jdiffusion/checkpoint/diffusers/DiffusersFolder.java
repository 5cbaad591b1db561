package dev.jdiffusion.checkpoint.diffusers;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.keys.ClipKeys;
import dev.jdiffusion.checkpoint.keys.KeyMap;
import dev.jdiffusion.checkpoint.keys.UNetKeys;
import dev.jdiffusion.checkpoint.keys.VaeKeys;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A diffusers model folder ({@code model_index.json}, {@code unet/}, {@code vae/},
 * {@code text_encoder/}, {@code text_encoder_2/}, {@code tokenizer/}, {@code tokenizer_2/},
 * {@code scheduler/}) seen as one checkpoint in single-file naming: every component's weights are
 * mapped to the names an LDM/SGM checkpoint uses ({@code model.diffusion_model.},
 * {@code first_stage_model.}, {@code cond_stage_model.} or {@code conditioner.embedders.N.}), so
 * the models are written once. Weights may be single files or sharded
 * ({@code *.safetensors.index.json}), safetensors or torch files, with an optional variant
 * ({@code fp16}).
 */
public final class DiffusersFolder implements Checkpoint {
    private static final Logger LOG = LoggerFactory.getLogger(DiffusersFolder.class);

    private final Path dir;
    private final List<Checkpoint> opened;
    private final Map<String, StoredTensor> tensors;
    private final Map<String, String> metadata;

    private DiffusersFolder(Path dir, List<Checkpoint> opened, Map<String, StoredTensor> tensors,
                            Map<String, String> metadata) {
        this.dir = dir;
        this.opened = opened;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /** True if {@code dir} looks like a diffusers folder (a model index or a {@code unet/} component). */
    public static boolean isDiffusersFolder(Path dir) {
        return Files.isDirectory(dir) && (Files.isRegularFile(dir.resolve("model_index.json"))
                || Files.isDirectory(dir.resolve("unet")));
    }

    /** Opens a folder, preferring full-precision weights. */
    public static DiffusersFolder open(Path dir) throws IOException {
        return open(dir, null);
    }

    /** Opens a folder, preferring weight files of {@code variant} (for example {@code "fp16"}) where present. */
    public static DiffusersFolder open(Path dir, String variant) throws IOException {
        if (!isDiffusersFolder(dir)) {
            throw new CheckpointFormatException(dir + ": not a diffusers folder (no model_index.json and no unet/)");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<?, ?> index = readJson(dir.resolve("model_index.json"));
        if (index.get("_class_name") instanceof String cls) {
            metadata.put("pipeline", cls);
        }
        Map<?, ?> scheduler = readJson(dir.resolve("scheduler").resolve("scheduler_config.json"));
        if (scheduler.get("prediction_type") instanceof String p) {
            metadata.put("prediction_type", p);
        }
        List<Checkpoint> opened = new ArrayList<>();
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        try {
            boolean xl = Files.isDirectory(dir.resolve("text_encoder_2"));
            Map<String, StoredTensor> unet = component(dir, "unet", variant, opened);
            if (unet != null) {
                KeyMap km = UNetKeys.diffusersToLdm(unet.keySet());
                unmapped(dir, "unet", km.unmapped());
                km.mapped().forEach((k, v) -> out.put("model.diffusion_model." + v, unet.get(k)));
            }
            Map<String, StoredTensor> vae = component(dir, "vae", variant, opened);
            if (vae != null) {
                List<String> um = new ArrayList<>();
                VaeKeys.diffusersToLdm(vae, um).forEach((k, v) -> out.put("first_stage_model." + k, v));
                unmapped(dir, "vae", um);
            }
            Map<String, StoredTensor> te = component(dir, "text_encoder", variant, opened);
            Map<String, StoredTensor> te2 = component(dir, "text_encoder_2", variant, opened);
            if (te != null) {
                if (xl) {
                    te.forEach((k, v) -> out.put("conditioner.embedders.0.transformer." + k, v));
                } else if (isOpenClip(dir.resolve("text_encoder"), te)) {
                    List<String> um = new ArrayList<>();
                    ClipKeys.hfToOpenClip(te, um).forEach((k, v) -> out.put("cond_stage_model.model." + k, v));
                    unmapped(dir, "text_encoder", um);
                } else {
                    te.forEach((k, v) -> out.put("cond_stage_model.transformer." + k, v));
                }
            }
            if (te2 != null) {
                List<String> um = new ArrayList<>();
                String prefix = te == null ? "conditioner.embedders.0.model." : "conditioner.embedders.1.model.";
                ClipKeys.hfToOpenClip(te2, um).forEach((k, v) -> out.put(prefix + k, v));
                unmapped(dir, "text_encoder_2", um);
            }
        } catch (IOException | RuntimeException e) {
            opened.forEach(Checkpoint::close);
            throw e;
        }
        return new DiffusersFolder(dir, opened, out, metadata);
    }

    private static void unmapped(Path dir, String component, List<String> keys) throws CheckpointFormatException {
        if (!keys.isEmpty()) {
            throw new CheckpointFormatException(dir.resolve(component) + ": " + keys.size()
                    + " weights with names this layout does not know, e.g. " + keys.subList(0, Math.min(5, keys.size())));
        }
    }

    /** OpenCLIP-derived encoders (SD 2.x) use GELU; OpenAI's CLIP (SD 1.x) uses quick GELU. */
    private static boolean isOpenClip(Path folder, Map<String, StoredTensor> weights) throws IOException {
        Map<?, ?> config = readJson(folder.resolve("config.json"));
        if (config.get("hidden_act") instanceof String act) {
            return !act.equals("quick_gelu");
        }
        StoredTensor tok = weights.get("text_model.embeddings.token_embedding.weight");
        return tok != null && tok.shape().length == 2 && tok.shape()[1] == 1024;
    }

    private static Map<?, ?> readJson(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            return Map.of();
        }
        try {
            return Json.parse(Files.readString(file)) instanceof Map<?, ?> m ? m : Map.of();
        } catch (IllegalArgumentException e) {
            throw new CheckpointFormatException(file + ": invalid JSON: " + e.getMessage());
        }
    }

    /** The weights of one component folder, or null when the folder is absent. */
    private static Map<String, StoredTensor> component(Path dir, String name, String variant, List<Checkpoint> opened)
            throws IOException {
        Path folder = dir.resolve(name);
        if (!Files.isDirectory(folder)) {
            return null;
        }
        List<String> stems = List.of("diffusion_pytorch_model", "model");
        List<String> candidates = new ArrayList<>();
        for (String v : variant == null ? new String[] {""} : new String[] {"." + variant, ""}) {
            for (String ext : List.of(".safetensors", ".bin")) {
                for (String stem : stems) {
                    candidates.add(stem + v + ext + ".index.json");
                    candidates.add(stem + v + ext);
                }
            }
        }
        for (String c : candidates) {
            Path f = folder.resolve(c);
            if (!Files.isRegularFile(f)) {
                continue;
            }
            if (c.endsWith(".index.json")) {
                return sharded(f, opened);
            }
            Checkpoint cp = Checkpoints.open(f);
            opened.add(cp);
            LOG.debug("{}: weights from {}", name, f);
            return cp.tensors();
        }
        throw new CheckpointFormatException(folder + ": no weights found (looked for " + candidates + ")");
    }

    private static Map<String, StoredTensor> sharded(Path indexFile, List<Checkpoint> opened) throws IOException {
        Map<?, ?> index = readJson(indexFile);
        if (!(index.get("weight_map") instanceof Map<?, ?> weightMap)) {
            throw new CheckpointFormatException(indexFile + ": no weight_map");
        }
        Map<String, Checkpoint> shards = new LinkedHashMap<>();
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : weightMap.entrySet()) {
            String key = String.valueOf(e.getKey());
            String file = String.valueOf(e.getValue());
            Path shard = indexFile.resolveSibling(file).normalize();
            if (!shard.getParent().equals(indexFile.getParent().normalize()) || file.contains("/") || file.contains("\\")) {
                throw new CheckpointFormatException(indexFile + ": shard \"" + file + "\" lies outside the folder");
            }
            Checkpoint cp = shards.get(file);
            if (cp == null) {
                cp = Checkpoints.open(shard);
                opened.add(cp);
                shards.put(file, cp);
            }
            StoredTensor t = cp.tensors().get(key);
            if (t == null) {
                throw new CheckpointFormatException(indexFile + ": weight \"" + key + "\" is mapped to " + file
                        + ", which does not hold it");
            }
            out.put(key, t);
        }
        return out;
    }

    @Override
    public String source() {
        return dir.toString();
    }

    /** All components' weights in single-file naming. */
    @Override
    public Map<String, StoredTensor> tensors() {
        return tensors;
    }

    /** {@code pipeline} (the model index's class name) and {@code prediction_type} (from the scheduler config) where present. */
    @Override
    public Map<String, String> metadata() {
        return metadata;
    }

    /** The prediction type the scheduler config names ({@code epsilon}, {@code v_prediction}), if any. */
    public Optional<String> predictionType() {
        return Optional.ofNullable(metadata.get("prediction_type"));
    }

    /** The tokenizer folder ({@code tokenizer/} or {@code tokenizer_2/}), if present. */
    public Optional<Path> tokenizer(int which) {
        Path p = dir.resolve(which == 1 ? "tokenizer" : "tokenizer_" + which);
        return Files.isDirectory(p) ? Optional.of(p) : Optional.empty();
    }

    @Override
    public void close() {
        opened.forEach(Checkpoint::close);
    }
}
