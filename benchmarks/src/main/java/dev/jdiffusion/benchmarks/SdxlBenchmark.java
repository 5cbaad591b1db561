package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
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
 * The SDXL base UNet at full size (the random checkpoint of {@link SdxlCheckpoint}, F16 weights, in
 * {@code jdiffusion.bench.dir}) on the CPU backend with every core (or, with {@code -p device=cuda},
 * on the GPU, {@link DeviceSettings}, as {@link ModelBenchmark} runs the SD 1.5 step there): one
 * step on a 128×128 latent with batch 2 (a CFG step of one 1024×1024 image), its 2048-wide context
 * and 2816-wide vector input. Seconds per operation; {@link PeakReport} adds GFLOP/s from
 * {@link #flops()} and, on the CPU, the fraction of the measured FMA ceiling.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx3g"})
public class SdxlBenchmark {
    private static double flops;

    private Backend backend;
    private SafetensorsFile file;
    private UNetStep step;

    static Path checkpoint() throws IOException {
        return SdxlCheckpoint.cached(CheckpointBenchmark.dir(), StoredType.F16, 1);
    }

    /** The UNet's weights, in the backend's memory as the pipeline puts them there. */
    private static UNet load(Backend backend, SafetensorsFile f) {
        Map<String, Tensor> w = new HashMap<>();
        f.tensors().forEach((k, v) -> {
            if (k.startsWith(SdxlCheckpoint.UNET)) {
                w.put(k, StableDiffusion.weightOnBackend(backend, k, v.toTensor()));
            }
        });
        return UNet.load(backend, w, SdxlCheckpoint.UNET, UNet.Config.sdxl());
    }

    /** The device settings ({@link DeviceSettings}: {@code -p device=cuda} and the others). */
    @Setup(Level.Trial)
    public void setUp(DeviceSettings on) throws IOException {
        backend = on.open();
        file = SafetensorsFile.open(checkpoint());
        step = new UNetStep(backend, load(backend, file), Tensor.zeros(2, 4, 128, 128), new float[] {500, 500},
                backend.upload(Tensor.zeros(2, 77, 2048)), backend.upload(Tensor.zeros(2, 2816)), on.cudaGraph, on.roundTrip);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        step.close();
        file.close();
        backend.close();
    }

    /** One UNet evaluation: latent 128×128, batch 2 (a CFG step of one 1024×1024 image). */
    @Benchmark
    public Tensor unetStep_128x128_batch2() {
        return step.run();
    }

    /** The FLOPs of one step, counted on the network itself ({@link FlopCounter}). */
    public static synchronized double flops() {
        if (flops == 0) {
            try (CpuBackend cheap = new CpuBackend(); SafetensorsFile f = SafetensorsFile.open(checkpoint())) {
                FlopCounter counter = new FlopCounter(cheap);
                load(counter, f).forward(Tensor.zeros(2, 4, 128, 128), new float[] {500, 500}, Tensor.zeros(2, 77, 2048),
                        Tensor.zeros(2, 2816), null);
                flops = counter.flops();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return flops;
    }
}
