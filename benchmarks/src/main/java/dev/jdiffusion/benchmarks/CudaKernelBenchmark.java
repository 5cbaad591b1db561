package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Shapes;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaBackend;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The CUDA backend's kernels at the shapes that dominate an SD 1.5 UNet step at 512×512 (those of
 * {@link KernelBenchmark}, batch 2 as CFG runs them), each operation ended by a wait for the stream:
 * the tensor cores' peak (register-only WMMA chains, the ceiling of the products), the products and
 * convolutions with F16 weights, attention over 4096 tokens, and the memory-bound side: a
 * device-to-device copy (the bandwidth ceiling), an elementwise add and group norm + SiLU.
 * {@link PeakReport} turns the times into TFLOP/s against the peak and GB/s against the copy. Needs a
 * CUDA device ({@code ordinal}); without one the setup fails with the reason.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx4g"})
public class CudaKernelBenchmark {
    /** Blocks of the peak kernel: enough to fill any current GPU several times over. */
    static final int PEAK_BLOCKS = 1024;
    static final int PEAK_ITERATIONS = 4096;
    /** Bytes of the copy (each way). */
    static final long COPY_BYTES = 256L << 20;
    static final int[] ACTIVATIONS = {2, 320, 64, 64};

    @Param({"0"})
    public int ordinal;

    private CudaBackend gpu;
    private Tensor a8192x2880;
    private Tensor w320x2880;
    private Tensor x320x64x64;
    private Tensor w320x320x3x3;
    private Tensor x640x32x32;
    private Tensor w640x640x3x3;
    private Tensor tokens1024x1280;
    private Tensor w10240x1280;
    private Tensor q4096x320;
    private Tensor copySrc;
    private Tensor copyDst;
    private Tensor act;
    private Tensor act2;
    private Tensor gamma;
    private Tensor beta;

    @Setup(Level.Trial)
    public void setUp() {
        gpu = CudaBackend.open(ordinal);
        Random rnd = new Random(1);
        a8192x2880 = up(rnd, DType.F32, 8192, 2880);
        w320x2880 = up(rnd, DType.F16, 320, 2880);
        x320x64x64 = up(rnd, DType.F32, 2, 320, 64, 64);
        w320x320x3x3 = up(rnd, DType.F16, 320, 320, 3, 3);
        x640x32x32 = up(rnd, DType.F32, 2, 640, 32, 32);
        w640x640x3x3 = up(rnd, DType.F16, 640, 640, 3, 3);
        tokens1024x1280 = up(rnd, DType.F32, 1024, 1280);
        w10240x1280 = up(rnd, DType.F16, 10240, 1280);
        q4096x320 = up(rnd, DType.F32, 2, 4096, 320);
        copySrc = gpu.upload(Tensor.zeros((int) (COPY_BYTES / 4)));
        copyDst = gpu.upload(Tensor.zeros((int) (COPY_BYTES / 4)));
        act = up(rnd, DType.F32, ACTIVATIONS);
        act2 = up(rnd, DType.F32, ACTIVATIONS);
        gamma = up(rnd, DType.F32, ACTIVATIONS[1]);
        beta = up(rnd, DType.F32, ACTIVATIONS[1]);
    }

    private Tensor up(Random rnd, DType type, int... shape) {
        return gpu.upload(KernelBenchmark.random(rnd, type, shape));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (gpu != null) {
            gpu.close();
        }
    }

    /** Floating-point operations of one call of the named benchmark method (0 for the memory-bound ones). */
    public static double flops(String method) {
        return switch (method) {
            case "tensorCorePeak_f16" -> 2.0 * 16 * 16 * 16 * 8 * PEAK_ITERATIONS * PEAK_BLOCKS * 4;
            case "linear_8192x320x2880_f16" -> 2.0 * 8192 * 320 * 2880;
            case "conv3x3_320ch_64x64_batch2" -> 2.0 * 2 * 320 * 4096 * 2880;
            case "conv3x3_640ch_32x32_batch2" -> 2.0 * 2 * 640 * 1024 * 5760;
            case "linear_1024x10240x1280_f16" -> 2.0 * 1024 * 10240 * 1280;
            case "attention_4096tok_8x40_batch2" -> 2 * 4.0 * 4096 * 4096 * 40 * 8;
            default -> 0;
        };
    }

    /** Bytes read and written by one call of a memory-bound benchmark method (0 for the others). */
    public static double bytes(String method) {
        double act = 4.0 * Shapes.numel(ACTIVATIONS);
        return switch (method) {
            case "copy_256MiB" -> 2.0 * COPY_BYTES;
            case "add_2x320x64x64" -> 3 * act;
            case "groupNormSilu_2x320x64x64" -> 2 * act;
            default -> 0;
        };
    }

    private Tensor done(Tensor t) {
        gpu.synchronize();
        return t;
    }

    @Benchmark
    public double tensorCorePeak_f16() {
        double f = gpu.tensorCorePeak(DType.F16, PEAK_BLOCKS, PEAK_ITERATIONS);
        gpu.synchronize();
        return f;
    }

    /** A 1280→320 style product at the 320-channel convolution's GEMM size (M=8192 N=320 K=2880), F16 weight. */
    @Benchmark
    public Tensor linear_8192x320x2880_f16() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.linear(a8192x2880, w320x2880, null));
        }
    }

    @Benchmark
    public Tensor conv3x3_320ch_64x64_batch2() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.conv2d(x320x64x64, w320x320x3x3, null, 1, 1));
        }
    }

    @Benchmark
    public Tensor conv3x3_640ch_32x32_batch2() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.conv2d(x640x32x32, w640x640x3x3, null, 1, 1));
        }
    }

    /** The GEGLU projection 1280 → 10240 at 16×16, batch 2 × 2 (CFG). */
    @Benchmark
    public Tensor linear_1024x10240x1280_f16() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.linear(tokens1024x1280, w10240x1280, null));
        }
    }

    /** Self-attention over 4096 tokens (64×64), 8 heads of 40, batch 2 (tensor cores, F16). */
    @Benchmark
    public Tensor attention_4096tok_8x40_batch2() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.attention(q4096x320, q4096x320, q4096x320, 8, false));
        }
    }

    /** 256 MiB device to device: the bandwidth the memory-bound kernels are measured against. */
    @Benchmark
    public Tensor copy_256MiB() {
        gpu.copyInto(copySrc, copyDst);
        return done(copyDst);
    }

    @Benchmark
    public Tensor add_2x320x64x64() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.add(act, act2));
        }
    }

    @Benchmark
    public Tensor groupNormSilu_2x320x64x64() {
        try (Backend.Scope s = gpu.scope()) {
            return done(gpu.groupNorm(act, 32, gamma, beta, 1e-5f, true));
        }
    }
}
