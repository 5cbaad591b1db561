package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Random;
import java.util.function.BiFunction;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every op the CUDA backend has a kernel for against the CPU backend on random inputs (sizes that
 * are not multiples of the block size, batch > 1, F16/BF16 weights). Runs on a CUDA device where
 * one is usable, elsewhere on the {@link EmulatedDevice} (the kernels compiled for the CPU: their
 * indexing and arithmetic, not the hardware's behaviour); skipped with both reasons when neither can.
 */
class CudaBackendTest {
    private static CpuBackend cpu;
    private static CudaBackend gpu;
    /** All in float32 on the CUDA cores. */
    private static CudaBackend full;

    @BeforeAll
    static void open() {
        CudaProbe.Result probe = CudaProbe.probe();
        if (probe.available()) {
            gpu = CudaBackend.open();
            full = CudaBackend.open(0, true);
        } else {
            String why = EmulatedDevice.unavailable();
            Assumptions.assumeTrue(why == null, "no CUDA device (" + probe.reason() + ") and no emulator (" + why + ")");
            gpu = new CudaBackend(new EmulatedDevice());
            full = new CudaBackend(new EmulatedDevice(), true);
        }
        cpu = new CpuBackend(2);
        System.out.println("CudaBackendTest on " + gpu.name());
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        if (full != null) {
            full.close();
        }
        if (cpu != null) {
            cpu.close();
        }
    }

    private static Tensor random(long seed, int... shape) {
        return TestTensors.gaussian(new Random(seed), DType.F32, 2, shape);
    }

    /** max |gpu − cpu| ≤ tol · max(1, max |cpu|). */
    private static void close(Tensor want, Tensor got, double tol, String what) {
        close(want, gpu, got, tol, what);
    }

    /** The same for a tensor made by {@code on}. */
    private static void close(Tensor want, CudaBackend on, Tensor got, double tol, String what) {
        float[] a = want.toFloatArray();
        float[] b = on.toHost(got).toFloatArray();
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
        unary(what, op, tol, random(1, 3, 5, 7, 11));
    }

    private static void unary(String what, BiFunction<Backend, Tensor, Tensor> op, double tol, Tensor x) {
        close(op.apply(cpu, x), op.apply(gpu, gpu.upload(x)), tol, what);
    }

    @Test
    void activations() {
        unary("silu", Backend::silu, 1e-6);
        unary("gelu", Backend::gelu, 1e-6);
        unary("gelu tanh", Backend::geluTanh, 1e-6);
        unary("quick gelu", Backend::quickGelu, 1e-6);
        // value and gate halves: an even last axis
        unary("geglu", Backend::geglu, 1e-6, random(1, 3, 5, 7, 22));
        unary("scale", (b, x) -> b.scale(x, -1.75f), 0);
    }

    /**
     * In autocast a float32 weight is rounded to the nearest F16, saturating at ±65504 rather than
     * becoming infinite (a few fine-tuned checkpoints hold such values); half-precision tensors come
     * back to the host in their type, bit for bit.
     */
    @Test
    void weightsInAutocastAreRoundedToHalfAndSaturate() {
        float[] v = {1f / 3, -2.5e-8f, 70000f, -1e9f, 65504f, 1e-3f, Float.MIN_NORMAL, -0f};
        Tensor w = Tensor.of(v, 2, 4);
        float[] want = Tensor.ofHalf(new float[] {1f / 3, -2.5e-8f, 65504f, -65504f, 65504f, 1e-3f, Float.MIN_NORMAL, -0f},
                DType.F16, 2, 4).toFloatArray();
        for (Tensor from : new Tensor[] {w, gpu.upload(w)}) {
            Tensor back = gpu.toHost(gpu.uploadWeight(from));
            assertTrue(back.dtype() == DType.F16 && back.storage().isHost());
            float[] got = back.toFloatArray();
            assertArrayEquals(want, got);
            assertTrue(got[2] == 65504f && got[3] == -65504f, "saturated, not infinite");
        }
        assertArrayEquals(v, full.toHost(full.uploadWeight(w)).toFloatArray(), "full precision keeps float32");
        Tensor bf = Tensor.ofHalf(v, DType.BF16, 8);
        Tensor bfBack = gpu.toHost(gpu.upload(bf));
        assertTrue(bfBack.dtype() == DType.BF16);
        assertArrayEquals(bf.toFloatArray(), bfBack.toFloatArray());
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
    void matrixProductsInEveryLayout() {
        Tensor a = random(14, 3, 37, 70);
        Tensor b = random(15, 3, 70, 45);
        Tensor at = cpu.permute(a, 0, 2, 1);
        Tensor bt = cpu.permute(b, 0, 2, 1);
        close(cpu.matmul(a, b, false, false), gpu.matmul(gpu.upload(a), gpu.upload(b), false, false), 1e-5, "A B");
        close(cpu.matmul(at, b, true, false), gpu.matmul(gpu.upload(at), gpu.upload(b), true, false), 1e-5, "Aᵀ B");
        close(cpu.matmul(a, bt, false, true), gpu.matmul(gpu.upload(a), gpu.upload(bt), false, true), 1e-5, "A Bᵀ");
        close(cpu.matmul(at, bt, true, true), gpu.matmul(gpu.upload(at), gpu.upload(bt), true, true), 1e-5, "Aᵀ Bᵀ");
        Tensor shared = Tensor.ofHalf(random(16, 70, 45).toFloatArray(), DType.F16, 70, 45);
        close(cpu.matmul(a, shared, false, false), gpu.matmul(gpu.upload(a), gpu.upload(shared), false, false), F16_TOL,
                "batched A, one F16 B (tensor cores)");
    }

    /**
     * Products with F16 (BF16) weights run on the tensor cores with the activations rounded to F16
     * (BF16): a relative error of 2⁻¹¹ (2⁻⁸) per operand, and over K terms of random sign an error
     * of a few of those relative to the largest output.
     */
    private static final double F16_TOL = 4 * Math.pow(2, -11);
    private static final double BF16_TOL = 4 * Math.pow(2, -8);

    @Test
    void linearAndConvolutionWithHalfWeights() {
        Tensor x = random(17, 2, 77, 96);
        Tensor w = Tensor.ofHalf(random(18, 130, 96).toFloatArray(), DType.F16, 130, 96);
        Tensor bias = random(19, 130);
        close(cpu.linear(x, w, bias), gpu.linear(gpu.upload(x), gpu.upload(w), gpu.upload(bias)), F16_TOL, "linear");
        close(cpu.linear(x, w, null), gpu.linear(gpu.upload(x), gpu.upload(w), null), F16_TOL, "linear without bias");
        Tensor wf = random(18, 130, 96);
        close(cpu.linear(x, wf, bias), gpu.linear(gpu.upload(x), gpu.upload(wf), gpu.upload(bias)), 1e-5,
                "linear, float32 weight (CUDA cores)");
        // several 128 x 128 tiles, K not a multiple of the tile depth 32, both orders of the operands
        Tensor big = random(27, 300, 200);
        Tensor wb = Tensor.ofHalf(random(28, 260, 200).toFloatArray(), DType.BF16, 260, 200);
        close(cpu.linear(big, wb, null), gpu.linear(gpu.upload(big), gpu.upload(wb), null), BF16_TOL, "linear, BF16 weight");
        Tensor wt = Tensor.ofHalf(random(29, 200, 260).toFloatArray(), DType.F16, 200, 260);
        close(cpu.matmul(wt, big, true, true), gpu.matmul(gpu.upload(wt), gpu.upload(big), true, true), F16_TOL,
                "F16 Aᵀ Bᵀ (tensor cores)");
        Tensor img = random(20, 2, 13, 19, 23);
        for (int[] c : new int[][] {{3, 1, 1}, {3, 2, 1}, {1, 1, 0}}) {
            Tensor k = Tensor.ofHalf(random(21, 70, 13, c[0], c[0]).toFloatArray(), DType.BF16, 70, 13, c[0], c[0]);
            Tensor kh = Tensor.ofHalf(k.toFloatArray(), DType.F16, k.shape());
            Tensor kf = Tensor.of(k.toFloatArray(), k.shape());
            Tensor kb = random(22, 70);
            String what = "conv " + c[0] + "x" + c[0] + " stride " + c[1];
            close(cpu.conv2d(img, k, kb, c[1], c[2]), gpu.conv2d(gpu.upload(img), gpu.upload(k), gpu.upload(kb), c[1], c[2]),
                    BF16_TOL, what + ", BF16 weight");
            close(cpu.conv2d(img, kh, kb, c[1], c[2]), gpu.conv2d(gpu.upload(img), gpu.upload(kh), gpu.upload(kb), c[1], c[2]),
                    F16_TOL, what + ", F16 weight");
            close(cpu.conv2d(img, kf, kb, c[1], c[2]), gpu.conv2d(gpu.upload(img), gpu.upload(kf), gpu.upload(kb), c[1], c[2]),
                    1e-5, what + ", float32 weight");
        }
        // a 320-channel 3 x 3 convolution at 64 x 64: many tiles in both directions
        Tensor x320 = random(30, 1, 320, 64, 64);
        Tensor w320 = Tensor.ofHalf(random(31, 320, 320, 3, 3).toFloatArray(), DType.F16, 320, 320, 3, 3);
        close(cpu.conv2d(x320, w320, null, 1, 1), gpu.conv2d(gpu.upload(x320), gpu.upload(w320), null, 1, 1), F16_TOL,
                "conv 320 channels 64x64, F16 weight");
    }

    /**
     * A residual added in the epilogue of a product (the tensor cores' and the CUDA cores'): the same
     * bits as the product followed by an add on the same backend, and as close to the CPU's as the
     * product alone; batch 2 of a convolution reads the second image's residual.
     */
    @Test
    void residualsAddedInTheProductsEpilogue() {
        Tensor x = random(40, 2, 77, 96);
        Tensor bias = random(41, 130);
        Tensor r = random(42, 2, 77, 130);
        Tensor wh = Tensor.ofHalf(random(43, 130, 96).toFloatArray(), DType.F16, 130, 96);
        Tensor wf = random(43, 130, 96);
        Tensor img = random(44, 2, 13, 19, 23);
        Tensor k = Tensor.ofHalf(random(45, 70, 13, 3, 3).toFloatArray(), DType.F16, 70, 13, 3, 3);
        Tensor kb = random(46, 70);
        Tensor rc = random(47, 2, 70, 19, 23);
        Tensor rs = random(48, 2, 70, 10, 12);
        for (CudaBackend on : new CudaBackend[] {gpu, full}) {
            String where = on == gpu ? " (tensor cores)" : " (float32)";
            double tol = on == gpu ? F16_TOL : 1e-5;
            for (Tensor w : new Tensor[] {wh, wf}) {
                Tensor fused = on.linear(on.upload(x), on.upload(w), on.upload(bias), on.upload(r));
                Tensor apart = on.add(on.linear(on.upload(x), on.upload(w), on.upload(bias)), on.upload(r));
                String what = "linear + residual, " + w.dtype() + " weight" + where;
                assertArrayEquals(on.toHost(apart).toFloatArray(), on.toHost(fused).toFloatArray(), what);
                close(cpu.linear(x, w, bias, r), on, fused, w.dtype() == DType.F16 && on == gpu ? tol : 1e-5, what);
            }
            for (int stride : new int[] {1, 2}) {
                Tensor res = stride == 1 ? rc : rs;
                Tensor fused = on.conv2d(on.upload(img), on.upload(k), on.upload(kb), stride, 1, on.upload(res));
                Tensor apart = on.add(on.conv2d(on.upload(img), on.upload(k), on.upload(kb), stride, 1), on.upload(res));
                String what = "conv stride " + stride + " + residual" + where;
                assertArrayEquals(on.toHost(apart).toFloatArray(), on.toHost(fused).toFloatArray(), what);
                close(cpu.conv2d(img, k, kb, stride, 1, res), on, fused, tol, what);
            }
        }
        ShapeException e = assertThrows(ShapeException.class,
                () -> gpu.linear(gpu.upload(x), gpu.upload(wh), null, gpu.upload(random(49, 77, 130))));
        assertTrue(e.getMessage().contains("[77, 130]") && e.getMessage().contains("[2, 77, 130]"), e.getMessage());
        IllegalArgumentException host = assertThrows(IllegalArgumentException.class,
                () -> gpu.conv2d(gpu.upload(img), gpu.upload(k), null, 1, 1, rc));
        assertTrue(host.getMessage().contains("not in CUDA memory"), host.getMessage());
    }

    @Test
    void halfActivationsSaturateInsteadOfOverflowing() {
        // 1e5 is beyond F16's range: converted for the tensor cores it saturates at 65504, not infinity
        Tensor x = Tensor.of(new float[] {1e5f, -1e5f, 1f, 2f}, 1, 4);
        Tensor w = Tensor.ofHalf(new float[] {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, DType.F16, 3, 4);
        float[] y = gpu.toHost(gpu.linear(gpu.upload(x), gpu.upload(w), null)).toFloatArray();
        assertTrue(y[0] == 65504f && y[1] == -65504f && y[2] == 1f, java.util.Arrays.toString(y));
        Tensor nan = Tensor.of(new float[] {1f, Float.NaN}, 1, 2);
        Tensor w2 = Tensor.ofHalf(new float[] {1, 1}, DType.F16, 1, 2);
        assertTrue(Float.isNaN(gpu.toHost(gpu.linear(gpu.upload(nan), gpu.upload(w2), null)).toFloatArray()[0]),
                "NaN stays NaN");
    }

    /**
     * Attention on the tensor cores: Q, K, V and the probabilities rounded to F16 (2⁻¹¹ each), the
     * scores and the softmax in float32; with inputs of unit variance the error stays well inside
     * 10⁻² of the largest output.
     */
    private static final double F16_ATTENTION_TOL = 1e-2;

    @Test
    void attentionAtTheHeadDimsOfTheModels() {
        // head dims that are multiples of 4 are staged 4 values at a time, others (13) one by one
        for (int[] c : new int[][] {{8, 40, 300, 77}, {5, 64, 130, 130}, {10, 80, 70, 250}, {2, 160, 65, 33}, {3, 8, 5, 40},
            {2, 13, 70, 45}}) {
            int heads = c[0];
            int width = heads * c[1];
            Tensor q = cpu.scale(random(23, 2, c[2], width), 0.5f);
            Tensor k = cpu.scale(random(24, 2, c[3], width), 0.5f);
            Tensor v = cpu.scale(random(25, 2, c[3], width), 0.5f);
            Tensor want = cpu.attention(q, k, v, heads, false);
            String what = "attention " + heads + "x" + c[1] + ", " + c[2] + " queries, " + c[3] + " keys";
            close(want, gpu.attention(gpu.upload(q), gpu.upload(k), gpu.upload(v), heads, false), F16_ATTENTION_TOL,
                    what + " (tensor cores)");
            close(want, full, full.attention(full.upload(q), full.upload(k), full.upload(v), heads, false), 1e-5,
                    what + " (float32)");
        }
        Tensor t = cpu.scale(random(26, 3, 77, 64), 0.5f);
        Tensor causal = cpu.attention(t, t, t, 4, true);
        close(causal, gpu.attention(gpu.upload(t), gpu.upload(t), gpu.upload(t), 4, true), F16_ATTENTION_TOL,
                "causal attention (CLIP), tensor cores");
        close(causal, full, full.attention(full.upload(t), full.upload(t), full.upload(t), 4, true), 1e-5,
                "causal attention (CLIP), float32");
        assertThrows(dev.jdiffusion.core.tensor.ShapeException.class,
                () -> gpu.attention(gpu.upload(t), gpu.upload(t), gpu.upload(t), 3, false));
    }

    @Test
    void fullPrecisionRunsHalfWeightsInFloat32() {
        Tensor x = random(32, 2, 77, 96);
        Tensor w = Tensor.ofHalf(random(33, 130, 96).toFloatArray(), DType.F16, 130, 96);
        close(cpu.linear(x, w, null), full, full.linear(full.upload(x), full.upload(w), null), 1e-5, "linear, F16 weight, float32");
        Tensor img = random(34, 1, 13, 19, 23);
        Tensor k = Tensor.ofHalf(random(35, 70, 13, 3, 3).toFloatArray(), DType.BF16, 70, 13, 3, 3);
        close(cpu.conv2d(img, k, null, 1, 1), full, full.conv2d(full.upload(img), full.upload(k), null, 1, 1), 1e-5,
                "conv, BF16 weight, float32");
    }

    @Test
    void aCapturedGraphComputesWhatTheEagerOpsDoWithEachRunsInputs() {
        Tensor w = Tensor.ofHalf(random(40, 64, 48).toFloatArray(), DType.F16, 64, 48);
        Tensor dw = gpu.upload(w);
        Tensor first = random(41, 2, 48);
        try (CudaGraph graph = gpu.capture(java.util.List.of(first, Tensor.of(new float[2], 2)),
                in -> gpu.add(gpu.silu(gpu.linear(in[0], dw, null)), gpu.timestepEmbedding(in[1], 64, 10000f, true, 0f)))) {
            for (int run = 0; run < 3; run++) {
                Tensor x = random(42 + run, 2, 48);
                float[] t = {100 + 300 * run, 999 - 100 * run};
                Tensor eager;
                try (Backend.Scope s = gpu.scope()) {
                    eager = gpu.toHost(gpu.add(gpu.silu(gpu.linear(gpu.upload(x), dw, null)), gpu.timestepEmbedding(t, 64)));
                }
                gpu.copyInto(x, graph.inputs()[0]);
                gpu.copyInto(Tensor.of(t, 2), graph.inputs()[1]);
                graph.run();
                assertArrayEquals(eager.toFloatArray(), gpu.toHost(graph.output()).toFloatArray(), "run " + run);
            }
        }
    }
}
