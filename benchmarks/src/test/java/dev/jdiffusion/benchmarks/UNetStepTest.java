package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.EmulatedDevice;
import dev.jdiffusion.cuda.FakeDevice;
import dev.jdiffusion.cuda.TestTensors;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The step the UNet benchmarks time, on a tiny SDXL-like UNet (vector input): what it computes is
 * the UNet's output, eager or graphed, and with the round trip off it leaves everything on the device.
 */
class UNetStepTest {
    private static final UNet.Config CONFIG = new UNet.Config(4, 4, 32, new int[] {2}, 1, new int[] {1, 2}, -1, 16,
            new int[] {0, 1}, 1, 24, true, 32);

    private static Tensor random(Random r, DType type, int... shape) {
        return TestTensors.gaussian(r, type, 0.5, shape);
    }

    private static UNet unet(Backend backend) {
        Random r = new Random(7);
        Map<String, Tensor> w = new HashMap<>();
        CONFIG.parameterShapes().forEach((k, shape) -> w.put("u." + k, backend.uploadWeight(random(r, DType.F16, shape))));
        return UNet.load(backend, w, "u.", CONFIG);
    }

    private static final Tensor LATENT = random(new Random(1), DType.F32, 2, 4, 16, 16);
    private static final Tensor CONTEXT = random(new Random(2), DType.F32, 2, 77, 24);
    private static final Tensor Y = random(new Random(3), DType.F32, 2, 32);
    private static final float[] T = {500, 500};

    @Test
    void onTheCpuTheStepIsTheUNetsOutput() {
        try (CpuBackend cpu = new CpuBackend(2)) {
            UNet unet = unet(cpu);
            Tensor want = unet.forward(LATENT, T, CONTEXT, Y, null);
            try (UNetStep step = new UNetStep(cpu, unet, LATENT, T, CONTEXT, Y, false, true)) {
                assertArrayEquals(want.toFloatArray(), step.run().toFloatArray());
                assertArrayEquals(want.toFloatArray(), step.run().toFloatArray(), "a second run");
            }
            IllegalArgumentException graph = assertThrows(IllegalArgumentException.class,
                    () -> new UNetStep(cpu, unet, LATENT, T, CONTEXT, Y, true, true));
            assertTrue(graph.getMessage().contains("cudaGraph=true needs device=cuda"), graph.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new UNetStep(cpu, unet, LATENT, T, CONTEXT, Y, false, false));
        }
    }

    /** Graphed and eager, with and without the round trip: the same output, and no host copy without it. */
    @Test
    void onTheGpuKernelsGraphedStepsAreTheEagerOnes() {
        String missing = EmulatedDevice.unavailable();
        Assumptions.assumeTrue(missing == null, "no emulated GPU: " + missing);
        try (CudaBackend gpu = EmulatedDevice.adversarialBackend(false)) {
            UNet unet = unet(gpu);
            Tensor context = gpu.upload(CONTEXT);
            Tensor y = gpu.upload(Y);
            float[] eager;
            try (UNetStep step = new UNetStep(gpu, unet, LATENT, T, context, y, false, true)) {
                eager = step.run().toFloatArray();
            }
            try (UNetStep step = new UNetStep(gpu, unet, LATENT, T, context, y, true, true)) {
                assertArrayEquals(eager, step.run().toFloatArray(), "the graph replays the eager step");
                assertArrayEquals(eager, step.run().toFloatArray(), "and again");
            }
            try (UNetStep step = new UNetStep(gpu, unet, LATENT, T, context, y, true, false)) {
                assertNull(step.run());
            }
        }
    }

    /** Without the round trip a step copies nothing to or from the host, eager or graphed. */
    @Test
    void withoutTheRoundTripNothingCrossesToTheHost() {
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            UNet unet = unet(gpu);
            Tensor context = gpu.upload(CONTEXT);
            Tensor y = gpu.upload(Y);
            for (boolean graph : new boolean[] {false, true}) {
                try (UNetStep step = new UNetStep(gpu, unet, LATENT, T, context, y, graph, false)) {
                    int in = dev.copiesToDevice();
                    int out = dev.copiesToHost();
                    assertNull(step.run());
                    step.run();
                    assertEquals(in, dev.copiesToDevice(), "graph " + graph);
                    assertEquals(out, dev.copiesToHost(), "graph " + graph);
                }
                try (UNetStep step = new UNetStep(gpu, unet, LATENT, T, context, y, graph, true)) {
                    int out = dev.copiesToHost();
                    assertArrayEquals(new int[] {2, 4, 16, 16}, step.run().shape());
                    assertEquals(out + 1, dev.copiesToHost(), "graph " + graph + ": the output comes back");
                }
            }
        }
    }
}
