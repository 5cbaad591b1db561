package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.lora.LoraFile;
import dev.jdiffusion.lora.LoraMerge;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Merging a rank-32 LoRA over every attention and convolution layer of an SDXL-sized UNet into its
 * F16 weights ({@link #merge}), and the two floors it is measured against: {@link #bytes()} (every
 * touched weight read and written once, the traffic a merge cannot avoid) at the memory bandwidth
 * that {@link #copy} measures on all cores, and {@link #flops()} at the measured GEMM rate (the
 * arithmetic floor). {@link PeakReport} prints the ratio. Weights and factors are random (seeded); the layer
 * shapes are those of {@code sd_xl_base.yaml}: 320/640/1280 channels, transformer depths 0/2/10,
 * 2048-wide context, linear projections.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2)
@Measurement(iterations = 5)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx18g",
    "-XX:G1HeapRegionSize=32m"})
public class LoraMergeBenchmark {
    public static final int RANK = 32;
    private Map<String, Tensor> base;
    private LoraFile lora;
    private List<MemorySegment[]> copies;
    /** Bytes {@link #copy} reads (and writes). */
    public static final long COPY_BYTES = 1L << 30;

    /** The SDXL UNet's attention and convolution weights, LDM names without prefix, with their shapes. */
    public static Map<String, int[]> layers() {
        Map<String, int[]> m = new LinkedHashMap<>();
        int[] mult = {1, 2, 4};
        int[] depth = {0, 2, 10};
        int ch = 320;
        java.util.ArrayDeque<Integer> skips = new java.util.ArrayDeque<>();
        skips.push(ch);
        int block = 1;
        for (int level = 0; level < 3; level++) {
            int out = 320 * mult[level];
            for (int j = 0; j < 2; j++, block++) {
                res(m, "input_blocks." + block + ".0", ch, out);
                ch = out;
                if (depth[level] > 0) {
                    transformer(m, "input_blocks." + block + ".1", ch, depth[level]);
                }
                skips.push(ch);
            }
            if (level < 2) {
                m.put("input_blocks." + block++ + ".0.op.weight", new int[] {ch, ch, 3, 3});
                skips.push(ch);
            }
        }
        res(m, "middle_block.0", ch, ch);
        transformer(m, "middle_block.1", ch, 10);
        res(m, "middle_block.2", ch, ch);
        int o = 0;
        for (int level = 2; level >= 0; level--) {
            int out = 320 * mult[level];
            for (int j = 0; j < 3; j++, o++) {
                res(m, "output_blocks." + o + ".0", ch + skips.pop(), out);
                ch = out;
                int sub = 1;
                if (depth[level] > 0) {
                    transformer(m, "output_blocks." + o + "." + sub++, ch, depth[level]);
                }
                if (level > 0 && j == 2) {
                    m.put("output_blocks." + o + "." + sub + ".conv.weight", new int[] {ch, ch, 3, 3});
                }
            }
        }
        return m;
    }

    private static void res(Map<String, int[]> m, String p, int in, int out) {
        m.put(p + ".in_layers.2.weight", new int[] {out, in, 3, 3});
        m.put(p + ".out_layers.3.weight", new int[] {out, out, 3, 3});
        if (in != out) {
            m.put(p + ".skip_connection.weight", new int[] {out, in, 1, 1});
        }
    }

    private static void transformer(Map<String, int[]> m, String p, int c, int depth) {
        m.put(p + ".proj_in.weight", new int[] {c, c});
        for (int d = 0; d < depth; d++) {
            String b = p + ".transformer_blocks." + d;
            for (String attn : new String[] {".attn1", ".attn2"}) {
                int ctx = attn.equals(".attn1") ? c : 2048;
                m.put(b + attn + ".to_q.weight", new int[] {c, c});
                m.put(b + attn + ".to_k.weight", new int[] {c, ctx});
                m.put(b + attn + ".to_v.weight", new int[] {c, ctx});
                m.put(b + attn + ".to_out.0.weight", new int[] {c, c});
            }
            m.put(b + ".ff.net.0.proj.weight", new int[] {8 * c, c});
            m.put(b + ".ff.net.2.weight", new int[] {c, 4 * c});
        }
        m.put(p + ".proj_out.weight", new int[] {c, c});
    }

    private static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** Elements of all touched weights. */
    public static long elements() {
        return layers().values().stream().mapToLong(LoraMergeBenchmark::numel).sum();
    }

    /** Floating-point operations of the merge's products: 2·out·in·k²·rank per layer. */
    public static double flops() {
        return 2.0 * RANK * elements();
    }

    /** Bytes a merge must read and write at least: every touched F16 weight once each way. */
    public static double bytes() {
        return 2.0 * 2 * elements();
    }

    @Setup(Level.Trial)
    public void setUp() {
        base = new LinkedHashMap<>();
        Map<String, StoredTensor> factors = new LinkedHashMap<>();
        copies = new ArrayList<>();
        for (long done = 0; done < COPY_BYTES; done += 64 << 20) {
            copies.add(new MemorySegment[] {MemorySegment.ofArray(new short[32 << 20]), MemorySegment.ofArray(new short[32 << 20])});
        }
        long seed = 1;
        for (Map.Entry<String, int[]> e : layers().entrySet()) {
            int[] shape = e.getValue();
            int n = (int) numel(shape);
            short[] bits = new short[n];
            SplittableRandom r = new SplittableRandom(seed++);
            for (int i = 0; i < n; i++) {
                bits[i] = Float.floatToFloat16((float) (0.02 * (r.nextDouble() - 0.5)));
            }
            base.put("model.diffusion_model." + e.getKey(),
                    new Tensor(new Storage.Segment(MemorySegment.ofArray(bits)), DType.F16, 0, shape, true));
            int cols = n / shape[0];
            String name = "lora_unet_" + e.getKey().substring(0, e.getKey().length() - ".weight".length()).replace('.', '_');
            boolean conv = shape.length == 4;
            factors.put(name + ".lora_down.weight", StoredTensor.of(Tensor.of(random(r, RANK * cols),
                    conv ? new int[] {RANK, shape[1], shape[2], shape[3]} : new int[] {RANK, cols})));
            factors.put(name + ".lora_up.weight", StoredTensor.of(Tensor.of(random(r, shape[0] * RANK),
                    conv ? new int[] {shape[0], RANK, 1, 1} : new int[] {shape[0], RANK})));
            factors.put(name + ".alpha", StoredTensor.of(Tensor.of(new float[] {16})));
        }
        lora = LoraFile.of("sdxl-rank32", factors, Map.of());
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) (0.01 * (r.nextDouble() - 0.5));
        }
        return f;
    }

    /** The previous merge's gigabytes collected before the next is timed. */
    @Setup(Level.Iteration)
    public void collect() {
        System.gc();
    }

    @Benchmark
    public Map<String, Tensor> merge() {
        return LoraMerge.merge(base, List.of(LoraMerge.Applied.of(lora, 0.8))).weights();
    }

    /** {@link #COPY_BYTES} read and written, on all cores: the memory bandwidth. */
    @Benchmark
    public long copy() {
        copies.parallelStream().forEach(c -> MemorySegment.copy(c[0], 0, c[1], 0, c[0].byteSize()));
        return IntStream.range(0, copies.size()).mapToLong(i -> copies.get(i)[1].byteSize()).sum();
    }
}
