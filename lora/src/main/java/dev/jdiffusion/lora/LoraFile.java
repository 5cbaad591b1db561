package dev.jdiffusion.lora;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.StoredTensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * An adapter file (LoRA, LoCon, LoHa, LoKr, DoRA, full differences) as the modules it holds, in
 * any of the namings people download: kohya-ss / A1111 ({@code lora_unet_…}, {@code lora_te_…},
 * {@code lora_te1_…}, {@code lora_te2_…} with {@code .lora_down.weight}, {@code .lora_up.weight},
 * {@code .alpha}), diffusers ({@code unet.….lora.down.weight}, attention-processor names
 * {@code ….processor.to_q_lora.down.weight}) and PEFT ({@code ….lora_A.weight}, {@code ….lora_B.weight}),
 * LyCORIS ({@code hada_…}, {@code lokr_…}, {@code dora_scale}, {@code diff}). Factors are upcast to
 * float32 when read (exactly, from F16/BF16); the file is closed afterwards.
 */
public record LoraFile(String name, Map<String, LoraModule> modules, Map<String, String> metadata) {
    /** Suffix → role, longest first where one ends another. */
    private static final String[][] ROLES = {
        {".lora_down.weight", "down"}, {".lora_up.weight", "up"}, {".lora_mid.weight", "mid"},
        {".lora_A.default.weight", "down"}, {".lora_B.default.weight", "up"},
        {".lora_A.weight", "down"}, {".lora_B.weight", "up"},
        {".lora.down.weight", "down"}, {".lora.up.weight", "up"},
        {"_lora.down.weight", "down"}, {"_lora.up.weight", "up"},
        {".hada_w1_a", "hada_w1_a"}, {".hada_w1_b", "hada_w1_b"}, {".hada_w2_a", "hada_w2_a"}, {".hada_w2_b", "hada_w2_b"},
        {".hada_t1", "hada_t1"}, {".hada_t2", "hada_t2"},
        {".lokr_w1_a", "lokr_w1_a"}, {".lokr_w1_b", "lokr_w1_b"}, {".lokr_w2_a", "lokr_w2_a"}, {".lokr_w2_b", "lokr_w2_b"},
        {".lokr_w1", "lokr_w1"}, {".lokr_w2", "lokr_w2"}, {".lokr_t2", "lokr_t2"},
        {".dora_scale", "dora_scale"}, {".diff_b", "diff_b"}, {".diff", "diff"}, {".alpha", "alpha"},
    };

    public LoraFile {
        modules = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(modules));
        metadata = Map.copyOf(metadata);
    }

    /** Reads an adapter file ({@code .safetensors}, or a {@code .pt}/{@code .ckpt} read by the safe unpickler). */
    public static LoraFile read(Path file) throws IOException {
        try (Checkpoint c = Checkpoints.open(file)) {
            String name = file.getFileName().toString().replaceFirst("\\.(safetensors|pt|ckpt|bin)$", "");
            return of(name, c.tensors(), c.metadata());
        }
    }

    /** The modules of a file's tensors; a tensor whose name fits no adapter naming is an error that names it. */
    public static LoraFile of(String name, Map<String, ? extends StoredTensor> tensors, Map<String, String> metadata) {
        Map<String, Map<String, LoraModule.Factor>> parts = new TreeMap<>();
        Map<String, Double> alphas = new TreeMap<>();
        List<String> unknown = new ArrayList<>();
        for (Map.Entry<String, ? extends StoredTensor> e : tensors.entrySet()) {
            String key = e.getKey();
            String[] split = split(key);
            if (split == null) {
                unknown.add(key);
                continue;
            }
            StoredTensor t = e.getValue();
            if (split[1].equals("alpha")) {
                alphas.put(split[0], t.doubles()[0]);
                continue;
            }
            double[] d = t.doubles();
            float[] f = new float[d.length];
            for (int i = 0; i < d.length; i++) {
                f[i] = (float) d[i];
            }
            parts.computeIfAbsent(split[0], k -> new LinkedHashMap<>()).put(split[1], new LoraModule.Factor(f, t.intShape()));
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(name + " is not an adapter file this reader knows: " + unknown.size()
                    + " tensors fit no LoRA/LyCORIS naming, e.g. " + unknown.subList(0, Math.min(3, unknown.size())));
        }
        Map<String, LoraModule> modules = new LinkedHashMap<>();
        for (Map.Entry<String, Map<String, LoraModule.Factor>> e : parts.entrySet()) {
            Map<String, LoraModule.Factor> p = e.getValue();
            LoraModule.Kind kind = p.containsKey("down") || p.containsKey("up") ? LoraModule.Kind.LORA
                    : p.keySet().stream().anyMatch(k -> k.startsWith("hada_")) ? LoraModule.Kind.LOHA
                    : p.keySet().stream().anyMatch(k -> k.startsWith("lokr_")) ? LoraModule.Kind.LOKR
                    : p.containsKey("diff") || p.containsKey("diff_b") ? LoraModule.Kind.DIFF : null;
            if (kind == null) {
                throw new IllegalArgumentException(name + ": module " + e.getKey() + " has only " + p.keySet()
                        + ", no adapter weights");
            }
            if (p.containsKey("mid") || p.containsKey("hada_t1")) {
                throw new IllegalArgumentException(name + ": module " + e.getKey()
                        + " uses a Tucker-decomposed convolution (lora_mid / hada_t1), which is not supported");
            }
            modules.put(e.getKey(), new LoraModule(e.getKey(), kind, p, alphas.get(e.getKey())));
        }
        for (String a : alphas.keySet()) {
            if (!parts.containsKey(a)) {
                throw new IllegalArgumentException(name + ": " + a + ".alpha belongs to no module");
            }
        }
        return new LoraFile(name, modules, metadata);
    }

    /** {module name, role} of a tensor name, or null when no suffix fits. */
    static String[] split(String key) {
        for (String[] r : ROLES) {
            if (key.endsWith(r[0]) && key.length() > r[0].length()) {
                String module = key.substring(0, key.length() - r[0].length());
                if (r[0].startsWith("_lora.")) {
                    // diffusers attention processors: "….attn1.processor.to_q_lora.down.weight" adapts "….attn1.to_q"
                    module = module.replace(".processor.", ".");
                    if (module.endsWith(".to_out")) {
                        module = module + ".0";
                    }
                }
                return new String[] {module, r[1]};
            }
        }
        return null;
    }
}
