package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import jcuda.Pointer;
import org.junit.jupiter.api.Test;

/**
 * The backend's host side on a fake device that checks every request against what a GPU would
 * accept: each launch's arguments against the kernel's parameter list in the shipped PTX (count,
 * width, kind), launch limits (1024 threads, 48 KiB of shared memory, grid sizes), and that every
 * pointer lies inside a live allocation. A whole UNet forward pass goes through it. (What the
 * kernels compute is checked only on a GPU, by {@link CudaBackendTest}.)
 */
class FakeDeviceTest {
    static final class FakeDevice implements Device {
        final Map<String, List<PtxFunctions.Param>> signatures = new HashMap<>();
        final Set<Long> live = new HashSet<>();
        final Set<String> launched = new LinkedHashSet<>();
        long next;
        int allocations;

        FakeDevice() {
            for (String m : JCudaDevice.MODULES) {
                signatures.putAll(PtxFunctions.signatures(JCudaDevice.ptx(m)));
            }
        }

        @Override
        public Block allocate(long bytes) {
            allocations++;
            Block b = new Block(++next, bytes, null);
            live.add(b.id());
            return b;
        }

        @Override
        public void free(Block block) {
            assertTrue(live.remove(block.id()), "freeing a block that is not live");
        }

        private void inside(Address a, long bytes) {
            if (a.block() == null) {
                return;
            }
            assertTrue(live.contains(a.block().id()), "pointer into a freed block");
            assertTrue(a.offset() >= 0 && a.offset() + bytes <= a.block().bytes(), "range outside its block");
        }

        @Override
        public void copyToDevice(Address dst, Pointer src, long bytes) {
            inside(dst, bytes);
        }

        @Override
        public void copyToHost(Pointer dst, Address src, long bytes) {
            inside(src, bytes);
        }

        @Override
        public void zero(Address dst, long bytes) {
            inside(dst, bytes);
        }

        @Override
        public void launch(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object... args) {
            List<PtxFunctions.Param> params = signatures.get(kernel);
            assertTrue(params != null, "no kernel " + kernel + " in the PTX");
            PtxFunctions.check(kernel, params, args);
            assertTrue(threads >= 1 && threads <= 1024, kernel + ": " + threads + " threads");
            assertTrue(sharedBytes >= 0 && sharedBytes <= 48 * 1024, kernel + ": " + sharedBytes + " bytes of shared memory");
            assertTrue(gridX >= 1 && gridY >= 1 && gridY <= 65535 && gridZ >= 1 && gridZ <= 65535,
                    kernel + ": grid " + gridX + "x" + gridY + "x" + gridZ);
            for (Object a : args) {
                if (a instanceof Address ad) {
                    inside(ad, 0);
                }
            }
            launched.add(kernel);
        }

        @Override
        public void synchronize() {
        }

        @Override
        public String name() {
            return "fake";
        }

        @Override
        public void close() {
        }
    }

    private static Tensor random(Random r, DType type, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return type == DType.F32 ? Tensor.of(v, shape) : Tensor.ofHalf(v, type, shape);
    }

    @Test
    void everyOpLaunchesItsKernelWithArgumentsThePtxAccepts() {
        FakeDevice dev = new FakeDevice();
        Random r = new Random(1);
        try (CudaBackend gpu = new CudaBackend(dev)) {
            Tensor x = gpu.upload(random(r, DType.F32, 2, 64, 9, 7));
            Tensor g = gpu.upload(random(r, DType.F16, 64));
            Tensor b = gpu.upload(random(r, DType.BF16, 64));
            gpu.silu(x);
            gpu.gelu(x);
            gpu.geluTanh(x);
            gpu.quickGelu(x);
            gpu.scale(x, 2);
            gpu.add(x, gpu.upload(random(r, DType.F32, 64, 1, 1)));
            gpu.mul(x, b.reshape(1, 64, 1, 1));
            gpu.groupNorm(x, 32, g, b, 1e-5f, true);
            gpu.layerNorm(x, g.reshape(64).slice(0, 7), null, 1e-5f);
            gpu.softmax(x);
            gpu.upsampleNearest2x(x);
            gpu.concat(1, x, x);
            gpu.permute(x, 0, 2, 3, 1);
            gpu.embedding(gpu.upload(random(r, DType.F16, 100, 12)), new int[] {1, 99});
            gpu.timestepEmbedding(new float[] {1, 2}, 320);
            gpu.zeros(3, 4);
            Tensor m = gpu.upload(random(r, DType.F32, 3, 37, 70));
            gpu.geglu(m);
            gpu.matmul(m, gpu.upload(random(r, DType.F16, 70, 45)), false, false);
            gpu.matmul(m, m, false, true);
            gpu.linear(m, gpu.upload(random(r, DType.F16, 20, 70)), gpu.upload(random(r, DType.F32, 20)));
            gpu.conv2d(x, gpu.upload(random(r, DType.F16, 32, 64, 3, 3)), null, 2, 1);
            gpu.attention(m, m, m, 5, true);
            assertArrayEquals(new float[12], gpu.toHost(gpu.zeros(3, 4)).toFloatArray());
        }
        assertEquals(Set.of("silu_f32", "gelu_f32", "gelu_tanh_f32", "quick_gelu_f32", "geglu_f32", "scale_f32", "binary_f32",
                "group_norm_f32", "layer_norm_f32", "softmax_f32", "upsample_nearest2x_f32", "concat_part_f32", "permute_f32",
                "embedding_f32", "timestep_embedding_f32", "gemm_f32", "conv2d_f32", "attention_f32"), dev.launched);
        assertTrue(dev.live.isEmpty(), "closing frees every block");
    }

    @Test
    void aWrongArgumentWidthIsCaughtBeforeTheLaunch() {
        List<PtxFunctions.Param> silu = PtxFunctions.signatures(JCudaDevice.ptx("elementwise")).get("silu_f32");
        Device.Address p = Device.Address.NULL;
        PtxFunctions.check("silu_f32", silu, p, p, 10L);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PtxFunctions.check("silu_f32", silu, p, p, 10));
        assertTrue(e.getMessage().contains("argument 2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PtxFunctions.check("silu_f32", silu, p, p));
        List<PtxFunctions.Param> binary = PtxFunctions.signatures(JCudaDevice.ptx("elementwise")).get("binary_f32");
        assertThrows(IllegalArgumentException.class, () -> PtxFunctions.check("binary_f32", binary, p, p, 0, p, 1L,
                new long[17], 0), "a struct of the wrong size");
    }

    @Test
    void aUNetForwardPassRunsOnTheFakeDevice() {
        UNet.Config cfg = new UNet.Config(4, 4, 32, new int[] {2}, 1, new int[] {1, 2}, -1, 16, new int[] {0, 1}, 1, 24,
                true, 32);
        FakeDevice dev = new FakeDevice();
        Random r = new Random(2);
        try (CudaBackend gpu = new CudaBackend(dev)) {
            Map<String, Tensor> w = new HashMap<>();
            cfg.parameterShapes().forEach((k, shape) -> w.put("model.diffusion_model." + k, gpu.upload(random(r, DType.F16, shape))));
            UNet unet = UNet.load(gpu, w, "model.diffusion_model.", cfg);
            Tensor x = gpu.upload(random(r, DType.F32, 2, 4, 16, 16));
            Tensor ctx = gpu.upload(random(r, DType.F32, 2, 77, 24));
            Tensor y = gpu.upload(random(r, DType.F32, 2, 32));
            List<Tensor> seen = new ArrayList<>();
            Tensor out = unet.forward(x, new float[] {500, 500}, ctx, y, (name, t) -> seen.add(t));
            assertArrayEquals(new int[] {2, 4, 16, 16}, out.shape());
            assertFalse(seen.isEmpty());
            assertTrue(dev.launched.containsAll(List.of("conv2d_f32", "group_norm_f32", "attention_f32", "gemm_f32",
                    "geglu_f32", "timestep_embedding_f32")), dev.launched.toString());
        }
    }
}
