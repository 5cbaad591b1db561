package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.pipeline.Devices;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * Where the network benchmarks ({@link ModelBenchmark}, {@link SdxlBenchmark}) run, as JMH
 * parameters: {@code -p device=cuda -p cudaGraph=false,true -p precision=autocast,full -p roundTrip=true,false}.
 */
@State(Scope.Benchmark)
public class DeviceSettings {
    /** Where the networks run ({@link Devices#open}): {@code -p device=cuda} times them on the GPU. */
    @Param({"cpu"})
    public String device;

    /** On a GPU, whether the UNet step runs as one captured CUDA graph. */
    @Param({"false"})
    public boolean cudaGraph;

    /** On a GPU: {@code autocast} (tensor cores in the weights' half precision) or {@code full} (float32). */
    @Param({"autocast"})
    public String precision;

    /**
     * On a GPU, whether the UNet step copies the latents in and the output back, as the pipeline does
     * (its samplers work on the host), or ({@code false}) leaves them and the timesteps on the device
     * and only waits for the stream: the difference is what samplers on the device would save
     * ({@link UNetStep}).
     */
    @Param({"true"})
    public boolean roundTrip;

    /** The backend these settings name. */
    Backend open() {
        return Devices.open(device, precision);
    }
}
