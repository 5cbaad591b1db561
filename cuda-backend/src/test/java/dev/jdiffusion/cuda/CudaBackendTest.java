package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Random;
import java.util.function.BiFunction;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every op the CUDA backend has a kernel for against the CPU backend on random inputs (sizes that
 * are not multiples of the block size, batch > 1, F16/BF16 weights). Runs only where a CUDA device
 * is usable; elsewhere every test is skipped with the probe's reason.
 */
class CudaBackendTest {
    private static CpuBackend cpu;
    private static CudaBackend gpu;

    @BeforeAll
    static void open() {
        CudaProbe.Result probe = CudaProbe.probe();
        Assumptions.assumeTrue(probe.available(), "no CUDA device: " + probe.reason());
        cpu = new CpuBackend(2);
        gpu = CudaBackend.open();
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private static Tensor random(long seed, int... shape) {
        Random r = new Random(seed);
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (2 * r.nextGaussian());
        }
        return Tensor.of(v, shape);
    }

    /** max |gpu − cpu| ≤ tol · max(1, max |cpu|). */
    private static void close(Tensor want, Tensor got, double tol, String what) {
        float[] a = want.toFloatArray();
        float[] b = gpu.toHost(got).toFloatArray();
        assertTrue(a.length == b.length, what + ": " + a.length + " vs " + b.length + " values");
        double scale = 1;
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            scale = Math.max(scale, Math.abs(a[i]));
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        assertTrue(worst <= tol * scale, what + ": max error " + worst + " (scale " + scale + ")");
    }

    private static void unary(String what, BiFunction<Backend, Tensor, Tensor> op, double tol) {
        Tensor x = random(1, 3, 5, 7, 11);
        close(op.apply(cpu, x), op.apply(gpu, gpu.upload(x)), tol, what);
    }

    @Test
    void activations() {
        unary("silu", Backend::silu, 1e-6);
        unary("gelu", Backend::gelu, 1e-6);
        unary("gelu tanh", Backend::geluTanh, 1e-6);
        unary("quick gelu", Backend::quickGelu, 1e-6);
        unary("geglu", Backend::geglu, 1e-6);
        unary("scale", (b, x) -> b.scale(x, -1.75f), 0);
    }

    @Test
    void broadcastingAddAndMulWithHalfOperands() {
        Tensor a = random(2, 2, 6, 5, 9);
        for (Tensor b : new Tensor[] {random(3, 2, 6, 1, 1), random(4, 6, 1, 1), random(5, 9), random(6, 2, 6, 5, 9)}) {
            close(cpu.add(a, b), gpu.add(gpu.upload(a), gpu.upload(b)), 0, "add");
            close(cpu.mul(a, b), gpu.mul(gpu.upload(a), gpu.upload(b)), 0, "mul");
            for (DType half : new DType[] {DType.F16, DType.BF16}) {
                Tensor h = Tensor.ofHalf(b.toFloatArray(), half, b.shape());
                close(cpu.add(a, h), gpu.add(gpu.upload(a), gpu.upload(h)), 0, "add " + half);
            }
        }
    }

    @Test
    void normalisationsAndSoftmax() {
        Tensor x = random(7, 2, 64, 9, 7);
        Tensor g = random(8, 64);
        Tensor b = random(9, 64);
        for (boolean silu : new boolean[] {false, true}) {
            close(cpu.groupNorm(x, 32, g, b, 1e-5f, silu), gpu.groupNorm(gpu.upload(x), 32, gpu.upload(g), gpu.upload(b), 1e-5f,
                    silu), 1e-5, "group norm");
        }
        Tensor h = Tensor.ofHalf(g.toFloatArray(), DType.F16, 64);
        close(cpu.groupNorm(x, 32, h, b, 1e-6f, true), gpu.groupNorm(gpu.upload(x), 32, gpu.upload(h), gpu.upload(b), 1e-6f,
                true), 1e-5, "group norm, F16 gamma");
        Tensor t = random(10, 3, 77, 64);
        close(cpu.layerNorm(t, g, b, 1e-5f), gpu.layerNorm(gpu.upload(t), gpu.upload(g), gpu.upload(b), 1e-5f), 1e-5, "layer norm");
        close(cpu.layerNorm(t, null, null, 1e-5f), gpu.layerNorm(gpu.upload(t), null, null, 1e-5f), 1e-5, "layer norm, no affine");
        close(cpu.softmax(t), gpu.softmax(gpu.upload(t)), 1e-6, "softmax");
    }

    @Test
    void layout() {
        Tensor x = random(11, 2, 3, 5, 7);
        close(cpu.upsampleNearest2x(x), gpu.upsampleNearest2x(gpu.upload(x)), 0, "upsample");
        Tensor y = random(12, 2, 4, 5, 7);
        close(cpu.concat(1, x, y), gpu.concat(1, gpu.upload(x), gpu.upload(y)), 0, "concat channels");
        close(cpu.concat(0, x, x), gpu.concat(0, gpu.upload(x), gpu.upload(x)), 0, "concat batch");
        close(cpu.permute(x, 0, 2, 3, 1), gpu.permute(gpu.upload(x), 0, 2, 3, 1), 0, "permute");
        Tensor table = Tensor.ofHalf(random(13, 50, 12).toFloatArray(), DType.F16, 50, 12);
        int[] ids = {49, 0, 7, 7, 3};
        close(cpu.embedding(table, ids), gpu.embedding(gpu.upload(table), ids), 0, "embedding");
        float[] ts = {0, 1, 500, 999, 3.5f};
        close(cpu.timestepEmbedding(ts, 320), gpu.timestepEmbedding(ts, 320), 2e-5, "timestep embedding");
        close(cpu.timestepEmbedding(ts, 33, 10000f, false, 1f), gpu.timestepEmbedding(ts, 33, 10000f, false, 1f), 2e-5,
                "timestep embedding, sin first, odd");
        close(cpu.zeros(3, 4), gpu.zeros(3, 4), 0, "zeros");
    }

    @Test
    void theOpsWithoutKernelsSaySo() {
        Tensor x = gpu.upload(random(14, 2, 3));
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> gpu.matmul(x, x, false, true));
        assertTrue(e.getMessage().contains("no CUDA kernel yet"), e.getMessage());
    }
}
