package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.text.ClipTokenizer;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The backend's host side on a {@link FakeDevice}, which checks every request against what a GPU
 * would accept. Whole UNet, VAE and CLIP passes go through it, and repeated steps must not ask the
 * device for more memory. (What the kernels compute is checked by {@link CudaBackendTest}, on a GPU
 * or on the emulated one.)
 */
class FakeDeviceTest {
    private static Tensor random(Random r, DType type, int... shape) {
        return TestTensors.gaussian(r, type, 1, shape);
    }

    @Test
    void everyOpLaunchesItsKernelWithArgumentsThePtxAccepts() {
        FakeDevice dev = new FakeDevice();
        Random r = new Random(1);
        try (CudaBackend gpu = dev.backend()) {
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
            gpu.linear(m, gpu.upload(random(r, DType.BF16, 20, 70)), null);
            gpu.linear(m, gpu.upload(random(r, DType.F32, 20, 70)), null);
            gpu.conv2d(x, gpu.upload(random(r, DType.F16, 32, 64, 3, 3)), null, 2, 1);
            gpu.conv2d(x, gpu.upload(random(r, DType.BF16, 32, 64, 1, 1)), gpu.upload(random(r, DType.F32, 32)), 1, 0);
            gpu.conv2d(x, gpu.upload(random(r, DType.F32, 32, 64, 3, 3)), null, 1, 1);
            gpu.attention(m, m, m, 5, true);
            assertArrayEquals(new float[12], gpu.toHost(gpu.zeros(3, 4)).toFloatArray());
        }
        assertEquals(Set.of("silu_f32", "gelu_f32", "gelu_tanh_f32", "quick_gelu_f32", "geglu_f32", "scale_f32", "binary_f32",
                "group_norm_f32", "layer_norm_f32", "softmax_f32", "upsample_nearest2x_f32", "concat_part_f32", "permute_f32",
                "embedding_f32", "timestep_embedding_f32", "gemm_f32", "gemm_tc_f16", "gemm_tc_bf16", "conv2d_f32",
                "conv2d_tc_f16", "conv2d_tc_bf16", "attention_tc_f16"), dev.launched);
        assertTrue(dev.live.isEmpty(), "closing frees every block");
    }

    @Test
    void theTensorCorePeakLaunchesWithArgumentsThePtxAcceptsAndCountsItsFlops() {
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            long inUse = gpu.bytesInUse();
            // 132 blocks of 4 warps, 8 chains of 16 x 16 x 16 products, 1000 times
            assertEquals(2.0 * 4096 * 8 * 1000 * 132 * 4, gpu.tensorCorePeak(DType.F16, 132, 1000));
            assertEquals(2.0 * 4096 * 8 * 10 * 4, gpu.tensorCorePeak(DType.BF16, 1, 10));
            assertEquals(inUse, gpu.bytesInUse(), "the warps' sums go back to the pool");
            assertThrows(IllegalArgumentException.class, () -> gpu.tensorCorePeak(DType.F32, 1, 1));
            assertThrows(IllegalArgumentException.class, () -> gpu.tensorCorePeak(DType.F16, 0, 1));
        }
        assertEquals(List.of("mma_peak_f16 132x1x1", "mma_peak_bf16 1x1x1"), dev.grids);
    }

    @Test
    void productsRunInThePrecisionOfTheirWeights() {
        assertEquals("gemm_f32", CudaBackend.productKernel("gemm", DType.F32, DType.F32));
        assertEquals("gemm_tc_f16", CudaBackend.productKernel("gemm", DType.F32, DType.F16));
        assertEquals("gemm_tc_f16", CudaBackend.productKernel("gemm", DType.F16, DType.F32));
        assertEquals("conv2d_tc_bf16", CudaBackend.productKernel("conv2d", DType.F32, DType.BF16));
        assertEquals("gemm_tc_bf16", CudaBackend.productKernel("gemm", DType.F16, DType.BF16));
        FakeDevice dev = new FakeDevice();
        Random r = new Random(3);
        try (CudaBackend gpu = dev.backend()) {
            Tensor x = gpu.upload(random(r, DType.F32, 300, 70));
            gpu.linear(x, gpu.upload(random(r, DType.F16, 130, 70)), null);
        }
        // 128 x 128 tiles on the tensor cores: ceil(130 / 128) x ceil(300 / 128) blocks
        assertEquals(List.of("gemm_tc_f16 2x3x1"), dev.grids);
        FakeDevice fullDev = new FakeDevice();
        try (CudaBackend gpu = new CudaBackend(fullDev, true)) {
            Tensor x = gpu.upload(random(r, DType.F32, 2, 300, 80));
            gpu.linear(x, gpu.upload(random(r, DType.F16, 130, 80)), null);
            gpu.conv2d(gpu.upload(random(r, DType.F32, 1, 8, 5, 5)), gpu.upload(random(r, DType.BF16, 4, 8, 3, 3)), null, 1, 1);
            gpu.attention(x, x, x, 2, false);
        }
        // full precision: float32 on the CUDA cores, 64 x 64 product tiles, 64 queries per attention block
        assertEquals(List.of("gemm_f32 3x10x1", "conv2d_f32 1x1x1", "attention_f32 5x2x2"), fullDev.grids);
    }

    /**
     * A float32 weight goes up as F16 in autocast (half the memory, products on the tensor cores);
     * half-precision weights and every weight in full precision go up as stored. (The values:
     * {@link CudaBackendTest}.)
     */
    @Test
    void autocastKeepsFloat32WeightsInHalfPrecision() {
        Random r = new Random(5);
        Tensor w = random(r, DType.F32, 20, 70);
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            long before = gpu.bytesInUse();
            Tensor up = gpu.uploadWeight(w);
            assertEquals(DType.F16, up.dtype());
            assertArrayEquals(new int[] {20, 70}, up.shape());
            assertEquals(before + DevicePool.sizeClass(2L * 20 * 70), gpu.bytesInUse());
            assertEquals(DType.F16, gpu.uploadWeight(gpu.upload(w)).dtype(), "a float32 weight already on the device");
            assertEquals(DType.BF16, gpu.uploadWeight(random(r, DType.BF16, 20, 70)).dtype());
            gpu.linear(gpu.upload(random(r, DType.F32, 3, 70)), up, null);
        }
        assertEquals(List.of("gemm_tc_f16 1x1x1"), dev.grids);
        FakeDevice fullDev = new FakeDevice();
        try (CudaBackend gpu = new CudaBackend(fullDev, true)) {
            assertEquals(DType.F32, gpu.uploadWeight(w).dtype());
        }
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
        try (CudaBackend gpu = dev.backend()) {
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
            // F16 weights: the convolutions and linear layers on the tensor cores
            assertTrue(dev.launched.containsAll(List.of("conv2d_tc_f16", "group_norm_f32", "attention_tc_f16", "gemm_tc_f16",
                    "geglu_f32", "timestep_embedding_f32")), dev.launched.toString());
            // the residual adds in the products' epilogues: what is left is one add of the time
            // embedding per residual block (8), the residual of each transformer with linear
            // projections, added after its layout change (4), and the label embedding (1)
            assertEquals(13, dev.grids.stream().filter(g -> g.startsWith("binary_f32 ")).count(), dev.grids.toString());
        }
    }

    @Test
    void aScopeGivesBackWhatItMadeExceptWhatItKeeps() {
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            Tensor outside = gpu.zeros(10);
            long base = gpu.bytesInUse();
            long block = DevicePool.sizeClass(4000);
            Tensor owner;
            Tensor kept;
            try (Backend.Scope outer = gpu.scope()) {
                try (Backend.Scope inner = gpu.scope()) {
                    Tensor a = gpu.zeros(1000);
                    owner = gpu.scale(a, 2);
                    kept = inner.keep(owner.reshape(10, 100));
                    assertEquals(base + 2 * block, gpu.bytesInUse());
                    assertThrows(IllegalStateException.class, outer::close, "scopes close innermost first");
                }
                assertEquals(base + block, gpu.bytesInUse(), "the temporary is back, the kept view's storage is not");
                gpu.silu(kept);
                assertEquals(base + 2 * block, gpu.bytesInUse());
                outer.keep(kept);
            }
            assertEquals(base + block, gpu.bytesInUse(), "kept out of the outermost scope: the caller's");
            kept.close();
            assertEquals(base + block, gpu.bytesInUse(), "a view does not own its storage");
            owner.close();
            assertEquals(base, gpu.bytesInUse());
            assertArrayEquals(new float[10], gpu.toHost(outside).toFloatArray());
        }
    }

    private static Map<String, Tensor> uploaded(CudaBackend gpu, Random r, Map<String, int[]> shapes, String prefix) {
        Map<String, Tensor> w = new HashMap<>();
        shapes.forEach((k, shape) -> w.put(prefix + k, gpu.upload(random(r, DType.F16, shape))));
        return w;
    }

    @Test
    void repeatedUNetStepsReuseTheirDeviceMemory() {
        UNet.Config cfg = new UNet.Config(4, 4, 32, new int[] {2}, 1, new int[] {1, 2}, -1, 16, new int[] {0, 1}, 1, 24,
                true, 32);
        FakeDevice dev = new FakeDevice();
        Random r = new Random(3);
        try (CudaBackend gpu = dev.backend()) {
            UNet unet = UNet.load(gpu, uploaded(gpu, r, cfg.parameterShapes(), "model.diffusion_model."),
                    "model.diffusion_model.", cfg);
            Tensor ctx = gpu.upload(random(r, DType.F32, 2, 77, 24));
            Tensor y = gpu.upload(random(r, DType.F32, 2, 32));
            long resident = gpu.bytesInUse();
            int allocationsAfterFirst = 0;
            for (int step = 0; step < 4; step++) {
                Tensor x = random(r, DType.F32, 2, 4, 16, 16); // host latents, as a sampler hands them over
                int copies = dev.copiesToDevice();
                try (Backend.Scope s = gpu.scope()) {
                    Tensor out = gpu.toHost(unet.forward(x, new float[] {900 - 200 * step, 900 - 200 * step}, ctx, y, null));
                    assertArrayEquals(new int[] {2, 4, 16, 16}, out.shape());
                }
                assertEquals(2, dev.copiesToDevice() - copies, "a step sends its latents and its timesteps, nothing else");
                assertEquals(resident, gpu.bytesInUse(), "step " + step + " gives back everything it made");
                if (step == 0) {
                    allocationsAfterFirst = dev.allocations();
                } else {
                    assertEquals(allocationsAfterFirst, dev.allocations(), "step " + step + " allocated on the device");
                }
            }
            assertTrue(gpu.bytesReserved() < resident + 64L * 1024 * 1024, "reserved " + gpu.bytesReserved());
        }
    }

    @Test
    void theVaeAndTheTextEncoderGiveBackTheirTemporaries() {
        FakeDevice dev = new FakeDevice();
        Random r = new Random(4);
        try (CudaBackend gpu = dev.backend()) {
            Vae vae = Vae.load(gpu, uploaded(gpu, r, Vae.parameterShapes(32, new int[] {1, 2}, 1, 4), "first_stage_model."),
                    "first_stage_model.");
            Map<String, int[]> clipShapes = ClipTextEncoder.parameterShapes(ClipTokenizer.END_OF_TEXT + 1, 32, 2);
            ClipTextEncoder clip = ClipTextEncoder.load(gpu, uploaded(gpu, r, clipShapes, "t."), "t.", 2,
                    ClipTextEncoder.Activation.QUICK_GELU);
            long resident = gpu.bytesInUse();
            Tensor image = gpu.toHost(vae.decode(random(r, DType.F32, 1, 4, 8, 8), null));
            assertArrayEquals(new int[] {1, 3, 16, 16}, image.shape());
            assertEquals(resident + DevicePool.sizeClass(4L * 3 * 16 * 16), gpu.bytesInUse(), "only the decoded image is left");
            image = gpu.toHost(vae.decodeTiled(random(r, DType.F32, 1, 4, 12, 12), 8, 4));
            assertArrayEquals(new int[] {1, 3, 24, 24}, image.shape());
            Vae.Posterior p = vae.encode(random(r, DType.F32, 1, 3, 16, 16), null);
            assertTrue(p.mean().storage().isHost());
            int[][] ids = new int[1][77];
            ids[0][0] = ClipTokenizer.START_OF_TEXT;
            java.util.Arrays.fill(ids[0], 1, 77, ClipTokenizer.END_OF_TEXT);
            ClipTextEncoder.Output out = clip.encode(ids);
            assertEquals(3, out.hiddenStates().size());
            try (Backend.Scope s = gpu.scope()) {
                clip.encode(ids);
            }
            long afterFirst = gpu.bytesInUse();
            try (Backend.Scope s = gpu.scope()) {
                clip.encode(ids);
            }
            assertEquals(afterFirst, gpu.bytesInUse());
        }
    }
}
