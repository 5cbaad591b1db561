package dev.jdiffusion.lora;

import dev.jdiffusion.core.cpu.HalfVectors;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Half;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.lang.foreign.Arena;
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
        return merge(base, loras, targets, null, true);
    }

    /**
     * Merges into one network's weights only (e.g. the text encoder's, while the UNet's adapters run
     * beside its weights: {@link LoraRuntime}), with the model's name table already built. The
     * unmatched module names are in the result but not logged: the caller that applies the rest logs them.
     */
    public static Merged merge(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets, LoraTargets.Part only) {
        return merge(base, loras, targets, only, false);
    }

    private static Merged merge(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets, LoraTargets.Part only,
                                boolean log) {
        Map<String, List<String>> unmatched = new LinkedHashMap<>();
        Map<String, List<Job>> work = plan(base, loras, targets, unmatched, log);
        if (only != null) {
            work.values().forEach(jobs -> jobs.removeIf(j -> j.target().part() != only));
            work.values().removeIf(List::isEmpty);
        }
        Map<String, Tensor> merged = new HashMap<>(base);
        Map<String, Tensor> originals = new HashMap<>();
        Map<String, MemorySegment> outputs = outputs(base, work);
        List<LowRank> fast = new ArrayList<>();
        for (Map.Entry<String, List<Job>> e : work.entrySet()) {
            Tensor w = base.get(e.getKey());
            originals.put(e.getKey(), w);
            MemorySegment out = outputs.get(e.getKey());
            if (out != null) {
                LowRank l = new LowRank(w, e.getValue(), out);
                fast.add(l);
                merged.put(e.getKey(), l.result());
                continue;
            }
            float[] v = w.toFloatArray();
            for (Job job : e.getValue()) {
                job.apply(v, w);
            }
            merged.put(e.getKey(), store(v, w));
        }
        // every row block of every weight as one task: no barrier between weights, so no core waits at a small one
        int blocks = fast.stream().mapToInt(LowRank::blocks).sum();
        int[][] tasks = new int[blocks][];
        int t = 0;
        for (int i = 0; i < fast.size(); i++) {
            for (int b = 0; b < fast.get(i).blocks(); b++) {
                tasks[t++] = new int[] {i, b};
            }
        }
        IntStream.range(0, blocks).parallel().forEach(k -> fast.get(tasks[k][0]).block(tasks[k][1]));
        return new Merged(merged, originals, unmatched);
    }

    /**
     * Per weight key, the changes the adapters make to it in the order given, every module checked
     * against the layer it names (shapes only; no values are read); unmatched module names go to
     * {@code unmatched} per adapter, and to the log with {@code log}.
     */
    static Map<String, List<Job>> plan(Map<String, Tensor> base, List<Applied> loras, LoraTargets targets,
                                       Map<String, List<String>> unmatched, boolean log) {
        Map<String, List<Job>> work = new LinkedHashMap<>();
        for (Applied a : loras) {
            LoraFile f = a.lora();
            List<String> missing = targets.unmatched(f.modules().keySet());
            if (!missing.isEmpty() && missing.size() == f.modules().size()) {
                throw new IllegalArgumentException("LoRA " + f.name() + " names none of this model's layers (e.g. "
                        + missing.get(0) + "); it is " + familyGuess(f) + ", not for this model");
            }
            unmatched.put(f.name(), missing);
            if (log && !missing.isEmpty()) {
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

    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Elements per block of the fast path: a block's float32 rows (256 KiB) stay in the core's cache while every job updates them. */
    private static final int BLOCK_ELEMENTS = 1 << 16;
    /** Each worker's block buffer, reused from block to block. */
    private static final ThreadLocal<float[]> BLOCK = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<short[]> HALVES = ThreadLocal.withInitial(() -> new short[0]);

    /**
     * One weight on the fast path for plain LoRAs: row blocks (run in parallel with every other weight's),
     * each read once from the stored type, updated by every job's (strength·scale·up)·down in float32
     * ({@link LowRankKernel}), written once in the stored type. Each element is computed by one thread in a
     * fixed order, so the result does not depend on the number of threads.
     */
    private static final class LowRank {
        private final int rows;
        private final int cols;
        private final float[][] ups;
        private final float[][] downs;
        private final int[] ranks;
        private final int[] rowFrom;
        private final MemorySegment src;
        private final MemorySegment dst;
        private final DType type;
        private final long base;
        private final int blockRows;
        private final Tensor result;

        LowRank(Tensor w, List<Job> jobs, MemorySegment dst) {
            rows = w.dim(0);
            cols = (int) (w.numel() / rows);
            int n = jobs.size();
            ups = new float[n][];
            downs = new float[n][];
            ranks = new int[n];
            rowFrom = new int[n];
            for (int i = 0; i < n; i++) {
                LoraModule m = jobs.get(i).module();
                LoraModule.Factor up = m.part("up");
                float f = (float) (jobs.get(i).strength() * m.scale());
                ranks[i] = up.cols();
                rowFrom[i] = jobs.get(i).target().rowFrom();
                ups[i] = up.data().clone();
                for (int k = 0; k < ups[i].length; k++) {
                    ups[i][k] *= f;
                }
                downs[i] = m.part("down").data();
            }
            src = ((Storage.Segment) w.storage()).segment();
            this.dst = dst;
            type = w.dtype();
            base = w.offset();
            blockRows = Math.max(8, BLOCK_ELEMENTS / cols / 8 * 8);
            result = new Tensor(new Storage.Segment(dst), type, 0, w.shape(), true);
        }

        Tensor result() {
            return result;
        }

        int blocks() {
            return (rows + blockRows - 1) / blockRows;
        }

        /** Row block b: read once, every job's (strength·scale·up)·down added in float32, written once. */
        void block(int b) {
            int r0 = b * blockRows;
            int nr = Math.min(blockRows, rows - r0);
            int count = nr * cols;
            long first = base + (long) r0 * cols;
            float[] acc = BLOCK.get();
            if (acc.length < count) {
                acc = new float[count];
                BLOCK.set(acc);
            }
            short[] halves = HALVES.get();
            if (halves.length < count) {
                halves = new short[count];
                HALVES.set(halves);
            }
            switch (type) {
                case F32 -> MemorySegment.copy(src, FLOAT_LE, first * 4, acc, 0, count);
                case F16 -> {
                    MemorySegment.copy(src, SHORT_LE, first * 2, halves, 0, count);
                    HalfVectors.toFloat(halves, 0, acc, 0, count);
                }
                case BF16 -> {
                    MemorySegment.copy(src, SHORT_LE, first * 2, halves, 0, count);
                    for (int i = 0; i < count; i++) {
                        acc[i] = Half.bf16ToFloat(halves[i]);
                    }
                }
            }
            for (int i = 0; i < ups.length; i++) {
                int from = Math.max(r0, rowFrom[i]);
                int to = Math.min(r0 + nr, rowFrom[i] + ups[i].length / ranks[i]);
                if (from < to) {
                    LowRankKernel.add(acc, from - r0, to - from, ups[i], from - rowFrom[i], downs[i], ranks[i], cols);
                }
            }
            long at = (long) r0 * cols;
            switch (type) {
                case F32 -> MemorySegment.copy(acc, 0, dst, FLOAT_LE, at * 4, count);
                case F16 -> {
                    HalfVectors.fromFloat(acc, 0, halves, 0, count);
                    MemorySegment.copy(halves, 0, dst, SHORT_LE, at * 2, count);
                }
                case BF16 -> {
                    for (int i = 0; i < count; i++) {
                        halves[i] = Half.floatToBf16(acc[i]);
                    }
                    MemorySegment.copy(halves, 0, dst, SHORT_LE, at * 2, count);
                }
            }
        }
    }

    /** Largest piece of memory the fast path's results share: 1 GiB (a byte[], which the Vector API reads and writes directly). */
    private static final int CHUNK_BYTES = 1 << 30;

    /**
     * Memory for the results of the fast path (weights whose every change is a plain LoRA), cut from a
     * few large arrays: the collector then keeps them where they are born instead of copying gigabytes
     * of merged weights from its young generation.
     */
    private static Map<String, MemorySegment> outputs(Map<String, Tensor> base, Map<String, List<Job>> work) {
        Map<String, MemorySegment> out = new HashMap<>();
        List<String> keys = new ArrayList<>();
        List<Long> sizes = new ArrayList<>();
        for (Map.Entry<String, List<Job>> e : work.entrySet()) {
            Tensor w = base.get(e.getKey());
            if (e.getValue().stream().allMatch(Job::isLowRank) && w.storage() instanceof Storage.Segment) {
                keys.add(e.getKey());
                sizes.add((w.numel() * w.dtype().byteSize() + 63) / 64 * 64);
            }
        }
        // group the weights into chunks, then allocate the chunks on all cores (the JVM zeroes new arrays, one thread per array)
        List<int[]> groups = new ArrayList<>();
        List<Long> chunkBytes = new ArrayList<>();
        int i = 0;
        while (i < keys.size()) {
            long chunk = 0;
            int j = i;
            while (j < keys.size() && (chunk == 0 || chunk + sizes.get(j) <= CHUNK_BYTES)) {
                chunk += sizes.get(j++);
            }
            groups.add(new int[] {i, j});
            chunkBytes.add(chunk);
            i = j;
        }
        MemorySegment[] memory = IntStream.range(0, groups.size()).parallel().mapToObj(g -> chunkBytes.get(g) > CHUNK_BYTES
                ? Arena.ofAuto().allocate(chunkBytes.get(g), 64) : MemorySegment.ofArray(new byte[(int) (long) chunkBytes.get(g)]))
                .toArray(MemorySegment[]::new);
        for (int g = 0; g < groups.size(); g++) {
            long at = 0;
            for (int k = groups.get(g)[0]; k < groups.get(g)[1]; k++) {
                out.put(keys.get(k), memory[g].asSlice(at, sizes.get(k)));
                at += sizes.get(k);
            }
        }
        return out;
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
        float[] scale = new float[norm.length];
        for (int n = 0; n < norm.length; n++) {
            scale[n] = (float) (mag[n] / (Math.sqrt(norm[n]) + Math.ulp(1f)));
        }
        for (int o = 0; o < rows; o++) {
            for (int i = 0; i < cols; i++) {
                int at = (rowFrom + o) * cols + i;
                w[at] += strength * (v[o * cols + i] * scale[perRow ? o : i / kk] - w[at]);
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
