package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Benchmark;

/** The GPU report can rate every GPU benchmark: each has FLOPs or bytes (not both), at the sizes it runs. */
class CudaKernelBenchmarkTest {
    @Test
    void everyBenchmarkHasARate() {
        int n = 0;
        for (Method m : CudaKernelBenchmark.class.getMethods()) {
            if (m.isAnnotationPresent(Benchmark.class)) {
                double flops = CudaKernelBenchmark.flops(m.getName());
                double bytes = CudaKernelBenchmark.bytes(m.getName());
                assertTrue(flops > 0 ^ bytes > 0, m.getName() + ": flops " + flops + ", bytes " + bytes);
                n++;
            }
        }
        assertEquals(9, n);
        // the 320-channel convolution at 64×64, batch 2: 2 · 2 · 320 · 4096 · (320 · 9)
        assertEquals(15.1e9, CudaKernelBenchmark.flops("conv3x3_320ch_64x64_batch2"), 0.05e9);
        assertEquals(2.0 * 256 * 1024 * 1024, CudaKernelBenchmark.bytes("copy_256MiB"));
    }
}
