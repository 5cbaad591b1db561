package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The SD 1.5 networks at full size (the random checkpoint of {@link Sd15Checkpoint}, F16 weights, in
 * {@code jdiffusion.bench.dir}), on the CPU backend with every core (or, with {@code -p device=cuda},
 * on the GPU, {@link DeviceSettings}; each operation then ends with its result copied back): one
 * UNet step on a 64×64 latent with batch 2 (512×512 images, conditional and unconditional), one VAE
 * decode to 512×512, and the text encoder on 2 prompts. Seconds per operation; {@link PeakReport}
 * adds GFLOP/s from {@link #flops(String)} and the fraction of the measured FMA ceiling.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx3g"})
public class ModelBenchmark {
    private static final Map<String, Double> FLOPS = new ConcurrentHashMap<>();

    private Backend backend;
    private Sd15Models models;
    private UNetStep step;
    private int[][] ids;
    private Tensor z;

    static Path checkpoint() throws IOException {
        return Sd15Checkpoint.cached(CheckpointBenchmark.dir(), StoredType.F16, 1);
    }

    /** The device settings ({@link DeviceSettings}: {@code -p device=cuda} and the others). */
    @Setup(Level.Trial)
    public void setUp(DeviceSettings on) throws IOException {
        backend = on.open();
        models = Sd15Models.load(backend, checkpoint());
        ids = prompts();
        z = Tensor.zeros(1, 4, 64, 64);
        step = new UNetStep(backend, models.unet, Tensor.zeros(2, 4, 64, 64), new float[] {500, 500},
                models.clip.encode(ids).lastHiddenState(), null, on.cudaGraph, on.roundTrip);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        step.close();
        models.close();
        backend.close();
    }

    private static int[][] prompts() {
        int[] a = new int[77];
        Arrays.fill(a, 49407);
        a[0] = 49406;
        int[] b = a.clone();
        for (int i = 1; i < 20; i++) {
            a[i] = 320 + i;
        }
        return new int[][] {a, b};
    }

    /** One UNet evaluation: latent 64×64, batch 2 (a CFG step of one 512×512 image). */
    @Benchmark
    public Tensor unetStep_64x64_batch2() {
        return step.run();
    }

    /** The VAE decoder from a 64×64 latent to a 512×512 image. */
    @Benchmark
    public Tensor vaeDecode_512() {
        try (Backend.Scope s = backend.scope()) {
            return backend.toHost(models.vae.decode(z, null));
        }
    }

    /** The text encoder on two 77-token prompts. */
    @Benchmark
    public Tensor clipEncode_batch2() {
        try (Backend.Scope s = backend.scope()) {
            return backend.toHost(models.clip.encode(ids).lastHiddenState());
        }
    }

    /** The FLOPs of one operation of a benchmark, counted on the networks themselves ({@link FlopCounter}). */
    public static double flops(String method) {
        return FLOPS.computeIfAbsent(method, ModelBenchmark::count);
    }

    private static double count(String method) {
        try (CpuBackend cheap = new CpuBackend()) {
            FlopCounter counter = new FlopCounter(cheap);
            try (Sd15Models m = Sd15Models.load(counter, checkpoint())) {
                switch (method) {
                    case "unetStep_64x64_batch2" -> m.unet.forward(Tensor.zeros(2, 4, 64, 64), new float[] {500, 500},
                            Tensor.zeros(2, 77, 768), null, null);
                    case "vaeDecode_512" -> m.vae.decode(Tensor.zeros(1, 4, 64, 64), null);
                    case "clipEncode_batch2" -> m.clip.encode(prompts());
                    default -> throw new IllegalArgumentException("unknown benchmark " + method);
                }
            }
            return counter.flops();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
