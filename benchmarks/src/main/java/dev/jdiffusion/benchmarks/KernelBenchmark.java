package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
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
 * The shapes that dominate an SD 1.5 UNet step at 512×512 (64×64 latent), on the CPU backend with
 * {@code threads} workers. {@link PeakReport} turns the scores into GFLOP/s and a fraction of the
 * measured FMA ceiling using {@link #flops(String)}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx8g"})
public class KernelBenchmark {

    @Param({"1", "2"})
    public int threads;

    private CpuBackend cpu;
    private Tensor a4096x2880;
    private Tensor b2880x320;
    private Tensor x320x64x64;
    private Tensor w320x320x3x3;
    private Tensor x640x32x32;
    private Tensor w640x640x3x3;
    private Tensor tokens512x1280;
    private Tensor w1280x1280;
    private Tensor w10240x1280;
    private Tensor q4096x320;

    @Setup(Level.Trial)
    public void setUp() {
        cpu = new CpuBackend(threads);
        Random rnd = new Random(1);
        a4096x2880 = random(rnd, DType.F32, 4096, 2880);
        b2880x320 = random(rnd, DType.F32, 2880, 320);
        x320x64x64 = random(rnd, DType.F32, 1, 320, 64, 64);
        w320x320x3x3 = random(rnd, DType.F16, 320, 320, 3, 3);
        x640x32x32 = random(rnd, DType.F32, 1, 640, 32, 32);
        w640x640x3x3 = random(rnd, DType.F16, 640, 640, 3, 3);
        tokens512x1280 = random(rnd, DType.F32, 512, 1280);
        w1280x1280 = random(rnd, DType.F16, 1280, 1280);
        w10240x1280 = random(rnd, DType.F16, 10240, 1280);
        q4096x320 = random(rnd, DType.F32, 1, 4096, 320);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cpu.close();
    }

    /** N(0, 0.1²) values in the given storage type. */
    static Tensor random(Random rnd, DType type, int... shape) {
        float[] v = new float[(int) dev.jdiffusion.core.tensor.Shapes.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian() * 0.1f;
        }
        return type == DType.F32 ? Tensor.of(v, shape) : Tensor.ofHalf(v, type, shape);
    }

    /** Floating-point operations of one call of the named benchmark method. */
    public static double flops(String method) {
        return switch (method) {
            case "gemm_4096x320x2880" -> 2.0 * 4096 * 320 * 2880;
            case "conv3x3_320ch_64x64" -> 2.0 * 320 * 4096 * 2880;
            case "conv3x3_640ch_32x32" -> 2.0 * 640 * 1024 * 5760;
            case "linear_512x1280x1280_f16" -> 2.0 * 512 * 1280 * 1280;
            case "linear_512x10240x1280_f16" -> 2.0 * 512 * 10240 * 1280;
            case "attention_4096tok_8x40" -> 4.0 * 4096 * 4096 * 40 * 8;
            default -> throw new IllegalArgumentException("unknown benchmark " + method);
        };
    }

    /** Plain matrix product at the size of the 320-channel 3×3 convolution as a GEMM (M=4096 N=320 K=2880). */
    @Benchmark
    public Tensor gemm_4096x320x2880() {
        return cpu.matmul(a4096x2880, b2880x320, false, false);
    }

    /** The 320-channel 3×3 convolution at 64×64 (GEMM M=320 N=4096 K=2880), fp16 weights. */
    @Benchmark
    public Tensor conv3x3_320ch_64x64() {
        return cpu.conv2d(x320x64x64, w320x320x3x3, null, 1, 1);
    }

    /** The 640-channel 3×3 convolution at 32×32 (GEMM M=640 N=1024 K=5760), fp16 weights. */
    @Benchmark
    public Tensor conv3x3_640ch_32x32() {
        return cpu.conv2d(x640x32x32, w640x640x3x3, null, 1, 1);
    }

    /** A 1280-wide linear layer (attention projection at 16×16, batch 2), fp16 weights. */
    @Benchmark
    public Tensor linear_512x1280x1280_f16() {
        return cpu.linear(tokens512x1280, w1280x1280, null);
    }

    /** The GEGLU projection 1280 → 10240 at 16×16, batch 2, fp16 weights. */
    @Benchmark
    public Tensor linear_512x10240x1280_f16() {
        return cpu.linear(tokens512x1280, w10240x1280, null);
    }

    /** Self-attention over 4096 tokens (64×64), 8 heads of 40: Q·Kᵀ is 4096×4096×40 per head. */
    @Benchmark
    public Tensor attention_4096tok_8x40() {
        return cpu.attention(q4096x320, q4096x320, q4096x320, 8, false);
    }
}
