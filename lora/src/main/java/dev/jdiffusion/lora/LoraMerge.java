package dev.jdiffusion.lora;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Half;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Merges adapters into a model's weights: W' = W + Σ strength · ΔW over every adapter that touches
 * W, computed in float32 and stored back in W's type (F16 stays F16). The result is a new weight map
 * in which the touched weights are new tensors and every other entry is the original; the originals
 * are kept, so {@link Merged#unmerge()} gives back the exact weights (mapped from the file, they
 * cost no memory). Modules that name no layer of the model are reported by name and logged, never
 * dropped silently; an adapter made for another model family (its factors do not fit the layers it
 * names) is refused with a message that says so.
 */
public final class LoraMerge {
    private static final Logger LOG = LoggerFactory.getLogger(LoraMerge.class);

    /** An adapter with its strength for the UNet and for the text encoder(s). */
    public record Applied(LoraFile lora, double unetStrength, double textEncoderStrength) {
        public Applied {
            if (!Double.isFinite(unetStrength) || !Double.isFinite(textEncoderStrength)) {
                throw new IllegalArgumentException("LoRA strengths must be finite numbers, got " + unetStrength + " and "
                        + textEncoderStrength + " for " + lora.name());
            }
        }

        /** The same strength for every network. */
        public static Applied of(LoraFile lora, double strength) {
            return new Applied(lora, strength, strength);
        }

        double strength(LoraTargets.Part part) {
            return part == LoraTargets.Part.UNET ? unetStrength : textEncoderStrength;
        }
    }

    /**
     * The merged weights, the originals of the weights that changed, and per adapter the names of
     * its modules that matched no layer.
     */
    public record Merged(Map<String, Tensor> weights, Map<String, Tensor> originals, Map<String, List<String>> unmatched) {
        /** The weights as they were before merging, bit for bit. */
        public Map<String, Tensor> unmerge() {
            Map<String, Tensor> w = new HashMap<>(weights);
            w.putAll(originals);
            return w;
        }
    }

    private LoraMerge() {
    }

    /** The shapes of a weight map, for {@link LoraTargets#of}. */
    public static Map<String, int[]> shapes(Map<String, Tensor> weights) {
        Map<String, int[]> s = new HashMap<>();
        weights.forEach((k, v) -> s.put(k, v.shape()));
        return s;
    }

    /** One module's change to one weight (or bias) of the model, at a strength. */
    record Job(LoraModule module, LoraTargets.Target target, String key, float strength) {
        /** A plain low-rank product on a weight: the merge's fast path. */
        boolean isLowRank() {
            return module.kind() == LoraModule.Kind.LORA && !module.hasDora() && !module.isBias();
        }

        /** Applies the change to the weight's float32 values {@code v} (the whole tensor). */
        void apply(float[] v, Tensor w) {
            int cols = module.isBias() ? 1 : (int) (w.numel() / w.dim(0));
            if (module.hasDora()) {
                dora(v, module, target.rowFrom(), module.deltaRows(), cols, w.shape(), strength);
            } else {
                module.addTo(v, target.rowFrom(), cols, strength);
            }
        }
    }

    public static Merged merge(Map<String, Tensor> base, List<Applied> loras) {
        return merge(base, loras, LoraTargets.of(shapes(base)));
    }

    /** As {@link #merge(Map, List)} with the model's name table already built. */
    public static Merged merge(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets) {
        return merge(base, loras, targets, null);
    }

    /**
     * Merges into one network's weights only (e.g. the text encoder's, while the UNet's adapters run
     * beside its weights: {@link LoraRuntime}).
     */
    public static Merged merge(Map<String, Tensor> base, List<Applied> loras, LoraTargets.Part only) {
        return merge(base, loras, LoraTargets.of(shapes(base)), only);
    }

    private static Merged merge(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets, LoraTargets.Part only) {
        Map<String, List<String>> unmatched = new LinkedHashMap<>();
        Map<String, List<Job>> work = plan(base, loras, targets, unmatched);
        if (only != null) {
            work.values().forEach(jobs -> jobs.removeIf(j -> j.target().part() != only));
            work.values().removeIf(List::isEmpty);
        }
        Map<String, Tensor> merged = new HashMap<>(base);
        Map<String, Tensor> originals = new HashMap<>();
        for (Map.Entry<String, List<Job>> e : work.entrySet()) {
            Tensor w = base.get(e.getKey());
            originals.put(e.getKey(), w);
            if (e.getValue().stream().allMatch(Job::isLowRank) && w.storage() instanceof Storage.Segment) {
                merged.put(e.getKey(), lowRank(w, e.getValue()));
                continue;
            }
            float[] v = w.toFloatArray();
            for (Job job : e.getValue()) {
                job.apply(v, w);
            }
            merged.put(e.getKey(), store(v, w));
        }
        return new Merged(merged, originals, unmatched);
    }

    /**
     * Per weight key, the changes the adapters make to it in the order given, every module checked
     * against the layer it names (shapes only; no values are read); unmatched module names go to
     * {@code unmatched} per adapter.
     */
    static Map<String, List<Job>> plan(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets,
                                       Map<String, List<String>> unmatched) {
        Map<String, List<Job>> work = new LinkedHashMap<>();
        for (Applied a : loras) {
            LoraFile f = a.lora();
            List<String> missing = targets.unmatched(f.modules().keySet());
            if (!missing.isEmpty() && missing.size() == f.modules().size()) {
                throw new IllegalArgumentException("LoRA " + f.name() + " names none of this model's layers (e.g. "
                        + missing.get(0) + "); it is " + familyGuess(f) + ", not for this model");
            }
            unmatched.put(f.name(), missing);
            if (!missing.isEmpty()) {
                LOG.warn("LoRA {}: {} modules match no layer of the model and are not applied: {}", f.name(), missing.size(),
                        missing);
            }
            for (LoraModule m : separateBias(f.modules().values())) {
                LoraTargets.Target t = targets.target(m.name());
                if (t == null) {
                    continue;
                }
                String key = m.isBias() ? t.biasKey() : t.weightKey();
                if (key == null) {
                    throw new IllegalArgumentException("LoRA " + f.name() + " changes the bias of " + m.name()
                            + ", a layer without one in this model");
                }
                Tensor w = base.get(key);
                int rows = m.isBias() ? w.dim(0) : t.rows() < 0 ? w.dim(0) : t.rows();
                long cols = m.isBias() ? 1 : w.numel() / w.dim(0);
                if (m.deltaSize() != rows * cols || m.deltaRows() != rows) {
                    throw new IllegalArgumentException("LoRA " + f.name() + " module " + m.name() + " changes a "
                            + m.deltaRows() + "-row weight of " + m.deltaSize() + " values, but the model's " + key
                            + (t.rows() < 0 ? "" : " rows " + t.rowFrom() + ".." + (t.rowFrom() + t.rows())) + " is "
                            + Arrays.toString(w.shape()) + "; it is " + familyGuess(f) + ", not for this model");
                }
                work.computeIfAbsent(key, k -> new ArrayList<>()).add(new Job(m, t, key, (float) a.strength(t.part())));
            }
        }
        return work;
    }

    /** The modules, a full difference of weight and bias as two (one per tensor it changes). */
    private static List<LoraModule> separateBias(java.util.Collection<LoraModule> modules) {
        List<LoraModule> out = new ArrayList<>();
        for (LoraModule m : modules) {
            if (m.kind() == LoraModule.Kind.DIFF && m.parts().containsKey("diff") && m.parts().containsKey("diff_b")) {
                out.add(new LoraModule(m.name(), m.kind(), Map.of("diff", m.part("diff")), m.alpha()));
                out.add(new LoraModule(m.name(), m.kind(), Map.of("diff_b", m.part("diff_b")), m.alpha()));
            } else {
                out.add(m);
            }
        }
        return out;
    }

    /** Rows per block of the fast path: a block's float32 rows stay in the core's cache while every job updates them. */
    private static final int BLOCK_ROWS = 8;

    /**
     * The fast path for plain LoRAs: row blocks in parallel, each read once from the stored type,
     * updated by every job's (strength·scale·up)·down in float32 ({@link LowRankKernel}), written once
     * in the stored type. Each element is computed by one thread in a fixed order, so the result does
     * not depend on the number of threads.
     */
    private static Tensor lowRank(Tensor w, List<Job> jobs) {
        int rows = w.dim(0);
        int cols = (int) (w.numel() / rows);
        int n = jobs.size();
        float[][] ups = new float[n][];
        float[][] downs = new float[n][];
        int[] ranks = new int[n];
        for (int i = 0; i < n; i++) {
            LoraModule m = jobs.get(i).module();
            LoraModule.Factor up = m.part("up");
            float f = (float) (jobs.get(i).strength() * m.scale());
            ranks[i] = up.cols();
            ups[i] = up.data().clone();
            for (int k = 0; k < ups[i].length; k++) {
                ups[i][k] *= f;
            }
            downs[i] = m.part("down").data();
        }
        MemorySegment src = ((Storage.Segment) w.storage()).segment();
        DType type = w.dtype();
        long base = w.offset();
        MemorySegment dst = type == DType.F32 ? MemorySegment.ofArray(new float[rows * cols])
                : MemorySegment.ofArray(new short[rows * cols]);
        IntStream.range(0, (rows + BLOCK_ROWS - 1) / BLOCK_ROWS).parallel().forEach(b -> {
            int r0 = b * BLOCK_ROWS;
            int nr = Math.min(BLOCK_ROWS, rows - r0);
            int count = nr * cols;
            float[] acc = new float[count];
            short[] bits = type == DType.F32 ? null : new short[count];
            if (bits == null) {
                MemorySegment.copy(src, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN),
                        (base + (long) r0 * cols) * 4, acc, 0, count);
            } else {
                MemorySegment.copy(src, ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN),
                        (base + (long) r0 * cols) * 2, bits, 0, count);
                if (type == DType.F16) {
                    for (int i = 0; i < count; i++) {
                        acc[i] = Float.float16ToFloat(bits[i]);
                    }
                } else {
                    for (int i = 0; i < count; i++) {
                        acc[i] = Float.intBitsToFloat(bits[i] << 16);
                    }
                }
            }
            for (int i = 0; i < n; i++) {
                LoraTargets.Target t = jobs.get(i).target();
                int from = Math.max(r0, t.rowFrom());
                int to = Math.min(r0 + nr, t.rowFrom() + ups[i].length / ranks[i]);
                if (from < to) {
                    LowRankKernel.add(acc, from - r0, to - from, ups[i], from - t.rowFrom(), downs[i], ranks[i], cols);
                }
            }
            if (bits == null) {
                MemorySegment.copy(acc, 0, dst, ValueLayout.JAVA_FLOAT_UNALIGNED, (long) r0 * cols * 4, count);
            } else {
                if (type == DType.F16) {
                    for (int i = 0; i < count; i++) {
                        bits[i] = Float.floatToFloat16(acc[i]);
                    }
                } else {
                    for (int i = 0; i < count; i++) {
                        bits[i] = Half.floatToBf16(acc[i]);
                    }
                }
                MemorySegment.copy(bits, 0, dst, ValueLayout.JAVA_SHORT_UNALIGNED, (long) r0 * cols * 2, count);
            }
        });
        return new Tensor(new Storage.Segment(dst), type, 0, w.shape(), true);
    }

    /** The values in the original tensor's type and shape. */
    private static Tensor store(float[] v, Tensor like) {
        DType t = like.dtype();
        return t == DType.F32 ? Tensor.of(v, like.shape()) : Tensor.ofHalf(v, t, like.shape());
    }

    /**
     * DoRA (Liu et al. 2024): V = W + ΔW, W_dora = magnitude · V / ‖V‖ (per output row when the
     * magnitude has one value per row, else per input channel), W ← W + strength · (W_dora − W).
     */
    private static void dora(float[] w, LoraModule m, int rowFrom, int rows, int cols, int[] shape, float strength) {
        float[] mag = m.part("dora_scale").data();
        float[] v = new float[rows * cols];
        System.arraycopy(w, rowFrom * cols, v, 0, v.length);
        m.addTo(v, 0, cols, 1);
        int kk = shape.length == 4 ? shape[2] * shape[3] : 1;
        int in = cols / kk;
        double[] norm;
        boolean perRow = mag.length == rows && m.part("dora_scale").shape()[0] == rows;
        if (perRow) {
            norm = new double[rows];
            for (int o = 0; o < rows; o++) {
                for (int i = 0; i < cols; i++) {
                    norm[o] += (double) v[o * cols + i] * v[o * cols + i];
                }
            }
        } else if (mag.length == in) {
            norm = new double[in];
            for (int o = 0; o < rows; o++) {
                for (int i = 0; i < cols; i++) {
                    norm[i / kk] += (double) v[o * cols + i] * v[o * cols + i];
                }
            }
        } else {
            throw new IllegalArgumentException("DoRA magnitude of " + m.name() + " has " + mag.length + " values, for a weight of "
                    + rows + " rows and " + in + " input channels");
        }
        for (int o = 0; o < rows; o++) {
            for (int i = 0; i < cols; i++) {
                int n = perRow ? o : i / kk;
                float scaled = (float) (mag[n] / (Math.sqrt(norm[n]) + Math.ulp(1f)));
                int at = (rowFrom + o) * cols + i;
                w[at] += strength * (v[o * cols + i] * scaled - w[at]);
            }
        }
    }

    /** What an adapter file looks made for, from its names and its cross-attention factors. */
    static String familyGuess(LoraFile f) {
        boolean two = f.modules().keySet().stream().anyMatch(n -> n.startsWith("lora_te1_") || n.startsWith("lora_te2_")
                || n.startsWith("text_encoder_2."));
        if (two) {
            return "an SDXL LoRA (it names two text encoders)";
        }
        for (LoraModule m : f.modules().values()) {
            if (m.kind() == LoraModule.Kind.LORA && m.name().matches(".*attn2[._]to_k$")) {
                int context = m.part("down").cols();
                String family = switch (context) {
                    case 768 -> "an SD 1.x LoRA";
                    case 1024 -> "an SD 2.x LoRA";
                    case 2048 -> "an SDXL LoRA";
                    default -> null;
                };
                if (family != null) {
                    return family + " (its cross-attention reads " + context + "-wide text features)";
                }
            }
        }
        return "a LoRA for another model";
    }
}
