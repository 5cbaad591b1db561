package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Capturing a UNet step as a CUDA graph, on the fake device: what the graph records is the eager
 * step's work, a run replays it without host copies or allocations, the memory it writes is its
 * own until it is closed, and host traffic inside a capture is refused without leaving the stream
 * capturing. (Whether replays compute the same numbers needs a GPU: {@code CudaBackendTest}.)
 */
class CudaGraphTest {
    private static final UNet.Config CFG = new UNet.Config(4, 4, 32, new int[] {2}, 1, new int[] {1, 2}, -1, 16,
            new int[] {0, 1}, 1, 24, true, 32);

    private static Tensor random(Random r, DType type, int... shape) {
        float[] v = new float[(int) dev.jdiffusion.core.tensor.Shapes.numel(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return type == DType.F32 ? Tensor.of(v, shape) : Tensor.ofHalf(v, type, shape);
    }

    /** A tiny UNet on a fake device with a batch's conditioning on the device and host latents. */
    private record Step(FakeDevice dev, CudaBackend gpu, UNet unet, Tensor ctx, Tensor y, Tensor x) implements AutoCloseable {
        static Step of(long seed, int batch) {
            FakeDevice dev = new FakeDevice();
            CudaBackend gpu = dev.backend();
            Random r = new Random(seed);
            Map<String, Tensor> w = new HashMap<>();
            CFG.parameterShapes().forEach((k, shape) -> w.put("m." + k, gpu.upload(random(r, DType.F16, shape))));
            return new Step(dev, gpu, UNet.load(gpu, w, "m.", CFG), gpu.upload(random(r, DType.F32, batch, 77, 24)),
                    gpu.upload(random(r, DType.F32, batch, 32)), random(r, DType.F32, batch, 4, 16, 16));
        }

        /** The step captured with its latents, timesteps, context and y as the graph's inputs. */
        CudaGraph capture() {
            return gpu.capture(List.of(x, Tensor.of(new float[x.dim(0)], x.dim(0)), ctx, y),
                    in -> unet.forward(in[0], in[1], in[2], in[3], null));
        }

        @Override
        public void close() {
            gpu.close();
        }
    }

    @Test
    void aCapturedStepReplaysTheEagerStepsKernelsWithoutHostTraffic() {
        Random r = new Random(5);
        try (Step st = Step.of(4, 2)) {
            FakeDevice dev = st.dev();
            CudaBackend gpu = st.gpu();
            UNet unet = st.unet();
            Tensor ctx = st.ctx();
            Tensor y = st.y();
            Tensor x = st.x();
            int before = dev.grids.size();
            try (Backend.Scope s = gpu.scope()) {
                gpu.toHost(unet.forward(x, new float[] {500, 500}, ctx, y, null));
            }
            List<String> eager = new ArrayList<>(dev.grids.subList(before, dev.grids.size()));
            long resident = gpu.bytesInUse();

            int launches = dev.launches();
            CudaGraph graph = st.capture();
            assertEquals(launches, dev.launches(), "a capture records kernels, it does not run them");
            assertTrue(gpu.bytesInUse() > resident, "the graph holds its step's memory");

            int allocations = dev.allocations();
            int toDevice = dev.copiesToDevice();
            int toHost = dev.copiesToHost();
            for (int run = 0; run < 3; run++) {
                Tensor[] in = graph.inputs();
                gpu.copyInto(random(r, DType.F32, 2, 4, 16, 16), in[0]);
                gpu.copyInto(Tensor.of(new float[] {900 - 300 * run, 900 - 300 * run}, 2), in[1]);
                gpu.copyInto(ctx, in[2]);
                gpu.copyInto(y, in[3]);
                int at = dev.grids.size();
                graph.run();
                assertEquals(eager, dev.grids.subList(at, dev.grids.size()), "run " + run + " replays the eager step's kernels");
                assertArrayEquals(new int[] {2, 4, 16, 16}, gpu.toHost(graph.output()).shape());
            }
            assertEquals(3, dev.graphLaunches());
            assertEquals(allocations, dev.allocations(), "runs allocate nothing");
            assertEquals(6, dev.copiesToDevice() - toDevice, "a run's host traffic: its latents and timesteps in");
            assertEquals(3, dev.copiesToHost() - toHost, "and its output out");
            assertEquals(6, dev.deviceCopies(), "the conditioning is copied on the device");

            graph.close();
            assertEquals(resident, gpu.bytesInUse(), "closing the graph gives its memory back");
            assertThrows(IllegalStateException.class, graph::run);
        }
    }

    @Test
    void theMemoryAGraphWritesIsNotHandedOutWhileItLives() {
        try (Step st = Step.of(6, 1); CudaGraph graph = st.capture()) {
            CudaBackend gpu = st.gpu();
            Set<Device.Block> held = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
            held.addAll(graph.blocks());
            assertTrue(held.size() > 4, "inputs, output and temporaries: " + held.size());
            // an eager step of the same shapes takes the same sizes from the pool: none of the graph's blocks
            try (Backend.Scope s = gpu.scope()) {
                gpu.toHost(st.unet().forward(st.x(), new float[] {10}, st.ctx(), st.y(), null));
                Tensor t = gpu.zeros(graph.output().shape());
                assertFalse(held.contains(((CudaBackend.DeviceStorage) t.storage()).block()),
                        "a new tensor got a block the graph writes");
            }
            for (Tensor in : graph.inputs()) {
                assertTrue(held.contains(((CudaBackend.DeviceStorage) in.storage()).block()));
            }
        }
    }

    @Test
    void hostTrafficInACaptureIsRefusedAndTheStreamIsFreedAgain() {
        try (Step st = Step.of(7, 1)) {
            CudaBackend gpu = st.gpu();
            UNet unet = st.unet();
            Tensor ctx = st.ctx();
            Tensor y = st.y();
            Tensor x = st.x();
            long resident = gpu.bytesInUse();
            // the float[] timesteps are host data: they would be baked into the graph as a stale copy
            CudaGraph.CaptureException e = assertThrows(CudaGraph.CaptureException.class, () -> gpu.capture(List.of(x),
                    in -> unet.forward(in[0], new float[] {10}, ctx, y, null)));
            assertTrue(e.getMessage().contains("uploading host data ([1])"), e.getMessage());
            assertThrows(CudaGraph.CaptureException.class, () -> gpu.capture(List.of(x), in -> gpu.toHost(in[0])));
            assertEquals(null, st.dev().recording, "the failed capture ended");
            assertEquals(resident, gpu.bytesInUse(), "and gave back what it took");
            // the backend works as before, and captures again
            try (Backend.Scope s = gpu.scope()) {
                gpu.toHost(unet.forward(x, new float[] {10}, ctx, y, null));
            }
            try (CudaGraph g = st.capture()) {
                g.run();
            }
            assertThrows(dev.jdiffusion.core.tensor.ShapeException.class, () -> gpu.copyInto(x, gpu.zeros(1, 4, 16, 8)));
        }
    }
}
