package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Every kernel on two emulated GPUs: the plain one and the adversarial one
 * ({@link EmulatedDevice#EmulatedDevice(boolean)}), which runs a block's threads between barriers
 * in the opposite order, the blocks from the last, and starts every shared variable as NaN. A kernel
 * whose threads share memory only across barriers, whose blocks write disjoint memory and which
 * reads only shared memory it wrote computes the same bits on both; a missing barrier, a warp that
 * assumes its lanes run in step without a {@code __syncwarp}, or padding that is never zeroed
 * changes the result. The shapes take every path of each kernel: the tensor-core products with
 * whole aligned blocks (16-byte staging) and with edges (element by element), convolutions with
 * stride 1 and 2, attention with several key blocks, causal and not, head dims that are padded.
 * On a real GPU the same ops run twice and must agree bit for bit.
 */
class RaceTest {
    private static Tensor random(long seed, DType type, int... shape) {
        return TestTensors.gaussian(new Random(seed), type, 1, shape);
    }

    /** Every op the backend launches a kernel for, by name, with its output on the host. */
    private static Map<String, float[]> everyOp(CudaBackend gpu) {
        Map<String, float[]> out = new LinkedHashMap<>();
        Tensor x = gpu.upload(random(1, DType.F32, 2, 64, 9, 7));
        Tensor g = gpu.upload(random(2, DType.F16, 64));
        Tensor b = gpu.upload(random(3, DType.BF16, 64));
        out.put("silu", gpu.toHost(gpu.silu(x)).toFloatArray());
        out.put("gelu", gpu.toHost(gpu.gelu(x)).toFloatArray());
        out.put("gelu tanh", gpu.toHost(gpu.geluTanh(x)).toFloatArray());
        out.put("quick gelu", gpu.toHost(gpu.quickGelu(x)).toFloatArray());
        out.put("scale", gpu.toHost(gpu.scale(x, -1.5f)).toFloatArray());
        out.put("add", gpu.toHost(gpu.add(x, gpu.upload(random(4, DType.F32, 64, 1, 1)))).toFloatArray());
        out.put("group norm + silu", gpu.toHost(gpu.groupNorm(x, 32, g, b, 1e-5f, true)).toFloatArray());
        out.put("group norm, 4 groups", gpu.toHost(gpu.groupNorm(x, 4, g, b, 1e-5f, false)).toFloatArray());
        Tensor m = gpu.upload(random(5, DType.F32, 3, 37, 70));
        out.put("layer norm", gpu.toHost(gpu.layerNorm(m, gpu.upload(random(6, DType.F16, 70)), null, 1e-5f)).toFloatArray());
        out.put("softmax", gpu.toHost(gpu.softmax(m)).toFloatArray());
        out.put("geglu", gpu.toHost(gpu.geglu(m)).toFloatArray());
        out.put("upsample", gpu.toHost(gpu.upsampleNearest2x(x)).toFloatArray());
        out.put("concat", gpu.toHost(gpu.concat(1, x, x)).toFloatArray());
        out.put("permute", gpu.toHost(gpu.permute(x, 0, 2, 3, 1)).toFloatArray());
        out.put("embedding", gpu.toHost(gpu.embedding(gpu.upload(random(7, DType.F16, 100, 12)), new int[] {1, 99, 5}))
                .toFloatArray());
        out.put("timestep embedding", gpu.toHost(gpu.timestepEmbedding(new float[] {1, 500}, 320)).toFloatArray());
        // products: an edge in every direction (element staging) and whole aligned blocks (16-byte staging)
        out.put("linear, edges", gpu.toHost(gpu.linear(m, gpu.upload(random(8, DType.F16, 130, 70)),
                gpu.upload(random(9, DType.F32, 130)))).toFloatArray());
        Tensor wide = gpu.upload(random(10, DType.F32, 2, 256, 64));
        Tensor residual = gpu.upload(random(11, DType.F32, 2, 256, 256));
        out.put("linear, whole blocks, residual", gpu.toHost(gpu.linear(wide, gpu.upload(random(12, DType.F16, 256, 64)),
                null, residual)).toFloatArray());
        out.put("linear, bf16", gpu.toHost(gpu.linear(wide, gpu.upload(random(13, DType.BF16, 256, 64)), null))
                .toFloatArray());
        out.put("matmul, transposed", gpu.toHost(gpu.matmul(m, m, false, true)).toFloatArray());
        out.put("linear, f32 weights", gpu.toHost(gpu.linear(m, gpu.upload(random(14, DType.F32, 20, 70)), null))
                .toFloatArray());
        Tensor image = gpu.upload(random(15, DType.F32, 2, 40, 12, 12));
        out.put("conv 3x3", gpu.toHost(gpu.conv2d(image, gpu.upload(random(16, DType.F16, 130, 40, 3, 3)),
                gpu.upload(random(17, DType.F32, 130)), 1, 1)).toFloatArray());
        out.put("conv 3x3 stride 2", gpu.toHost(gpu.conv2d(image, gpu.upload(random(18, DType.F16, 32, 40, 3, 3)), null, 2, 1))
                .toFloatArray());
        out.put("conv 1x1 bf16", gpu.toHost(gpu.conv2d(image, gpu.upload(random(19, DType.BF16, 24, 40, 1, 1)), null, 1, 0))
                .toFloatArray());
        out.put("conv 3x3 f32 weights", gpu.toHost(gpu.conv2d(image, gpu.upload(random(20, DType.F32, 8, 40, 3, 3)), null,
                1, 1)).toFloatArray());
        // attention: 70 queries and keys (more than one block of each), head dims 40 and 64
        Tensor q = gpu.upload(random(21, DType.F32, 2, 70, 80));
        Tensor k = gpu.upload(random(22, DType.F32, 2, 70, 80));
        Tensor v = gpu.upload(random(23, DType.F32, 2, 70, 80));
        out.put("attention d40", gpu.toHost(gpu.attention(q, k, v, 2, false)).toFloatArray());
        out.put("attention d40 causal", gpu.toHost(gpu.attention(q, k, v, 2, true)).toFloatArray());
        Tensor q64 = gpu.upload(random(24, DType.F32, 1, 45, 64));
        Tensor k64 = gpu.upload(random(25, DType.F32, 1, 77, 64));
        out.put("attention d64, 77 keys", gpu.toHost(gpu.attention(q64, k64, k64, 1, false)).toFloatArray());
        return out;
    }

    /** The ops that compute other bits on the adversarial device, in one precision; the kernels they launched into {@code launched}. */
    private static List<String> differences(boolean fullPrecision, Set<String> launched) {
        Map<String, float[]> forward;
        Map<String, float[]> reversed;
        EmulatedDevice ahead = new EmulatedDevice(false);
        try (CudaBackend gpu = new CudaBackend(ahead, fullPrecision)) {
            forward = everyOp(gpu);
        }
        try (CudaBackend gpu = new CudaBackend(new EmulatedDevice(true), fullPrecision)) {
            reversed = everyOp(gpu);
        }
        launched.addAll(ahead.launched());
        return differences(forward, reversed, fullPrecision ? "full precision " : "autocast ");
    }

    /** The ops whose outputs differ in any bit between two runs, named with {@code label} and how many values differ. */
    private static List<String> differences(Map<String, float[]> first, Map<String, float[]> second, String label) {
        List<String> differ = new ArrayList<>();
        for (Map.Entry<String, float[]> e : first.entrySet()) {
            float[] a = e.getValue();
            float[] c = second.get(e.getKey());
            assertEquals(a.length, c.length);
            int diff = 0;
            for (int i = 0; i < a.length; i++) {
                if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(c[i])) {
                    diff++;
                }
            }
            if (diff > 0) {
                differ.add(label + e.getKey() + " (" + diff + " of " + a.length + " values)");
            }
        }
        return differ;
    }

    /**
     * On a real GPU, where a race shows as results that change from run to run: every op twice on one
     * backend, the second time on the memory the first run gave back to the pool (so that reading
     * memory nothing wrote reads other values), in both precisions; the same bits required.
     */
    @Test
    void onAGpuEveryKernelGivesTheSameBitsTwice() {
        CudaProbe.Result probe = CudaProbe.probe();
        Assumptions.assumeTrue(probe.available(), "no CUDA device: " + probe.reason());
        List<String> differ = new ArrayList<>();
        for (boolean full : new boolean[] {false, true}) {
            try (CudaBackend gpu = CudaBackend.open(0, full)) {
                differ.addAll(twice(gpu, full ? "full precision " : "autocast "));
            }
        }
        assertTrue(differ.isEmpty(), "these ops computed other bits the second time: " + differ);
    }

    /** Every op twice on one backend, each run's device memory given back before the next. */
    private static List<String> twice(CudaBackend gpu, String label) {
        Map<String, float[]> first;
        try (dev.jdiffusion.core.backend.Backend.Scope s = gpu.scope()) {
            first = everyOp(gpu);
        }
        Map<String, float[]> second;
        try (dev.jdiffusion.core.backend.Backend.Scope s = gpu.scope()) {
            second = everyOp(gpu);
        }
        return differences(first, second, label + "second run: ");
    }

    @Test
    void noKernelRacesOrReadsSharedMemoryItNeverWrote() {
        String missing = EmulatedDevice.unavailable();
        Assumptions.assumeTrue(missing == null, "no emulated GPU: " + missing);
        Set<String> launched = new TreeSet<>();
        List<String> differ = new ArrayList<>(differences(false, launched));
        differ.addAll(differences(true, launched));
        // and as on a GPU, twice on one device (the second run on the first one's memory)
        for (boolean full : new boolean[] {false, true}) {
            try (CudaBackend gpu = new CudaBackend(new EmulatedDevice(true), full)) {
                differ.addAll(twice(gpu, full ? "full precision " : "autocast "));
            }
        }
        assertTrue(differ.isEmpty(), "these ops compute other bits when the threads and blocks run in the opposite order"
                + " and shared memory starts as NaN: " + differ);
        // every kernel of the shipped PTX but the tensor cores' peak (registers only, no shared memory)
        Set<String> all = new TreeSet<>();
        for (String module : new String[] {"elementwise", "linalg"}) {
            PtxFunctions.signatures(JCudaDevice.ptx(module)).keySet().stream().filter(k -> !k.startsWith("mma_peak_"))
                    .forEach(all::add);
        }
        Set<String> missed = new TreeSet<>(all);
        missed.removeAll(launched);
        assertTrue(missed.isEmpty(), "kernels the race check does not run: " + missed);
    }
}
