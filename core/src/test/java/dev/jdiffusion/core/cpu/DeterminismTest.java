package dev.jdiffusion.core.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** Every op gives the same bits with 1, 2 and 3 threads. */
class DeterminismTest {

    @Test
    void everyOpIsBitIdenticalForAnyThreadCount() {
        Random rnd = new Random(42);
        Tensor x = Tensor.of(CpuBackendTest.random(rnd, 2 * 64 * 33 * 35, 1f), 2, 64, 33, 35);
        Tensor w3 = Tensor.ofHalf(CpuBackendTest.random(rnd, 96 * 64 * 9, 0.05f), DType.F16, 96, 64, 3, 3);
        Tensor w1 = Tensor.of(CpuBackendTest.random(rnd, 40 * 64, 0.1f), 40, 64, 1, 1);
        Tensor bias = Tensor.of(CpuBackendTest.random(rnd, 96, 1f), 96);
        Tensor gamma = Tensor.of(CpuBackendTest.random(rnd, 64, 1f), 64);
        Tensor beta = Tensor.of(CpuBackendTest.random(rnd, 64, 1f), 64);
        Tensor seq = Tensor.of(CpuBackendTest.random(rnd, 2 * 300 * 320, 1f), 2, 300, 320);
        Tensor ctx = Tensor.of(CpuBackendTest.random(rnd, 2 * 77 * 320, 1f), 2, 77, 320);
        Tensor lw = Tensor.ofHalf(CpuBackendTest.random(rnd, 1280 * 320, 0.05f), DType.BF16, 1280, 320);
        Tensor a = Tensor.of(CpuBackendTest.random(rnd, 3 * 200 * 450, 1f), 3, 200, 450);
        Tensor b = Tensor.of(CpuBackendTest.random(rnd, 3 * 450 * 170, 1f), 3, 450, 170);
        // large enough for several row blocks, column groups and two chunks of packed B
        Tensor big1 = Tensor.of(CpuBackendTest.random(rnd, 130 * 3000, 1f), 130, 3000);
        Tensor big2 = Tensor.of(CpuBackendTest.random(rnd, 3000 * 1450, 1f), 3000, 1450);
        List<Function<Backend, Tensor>> ops = List.of(
                be -> be.conv2d(x, w3, bias, 1, 1),
                be -> be.conv2d(x, w3, bias, 2, 1),
                be -> be.conv2d(x, w1, null, 1, 0),
                be -> be.groupNorm(x, 32, gamma, beta, 1e-6f, true),
                be -> be.layerNorm(seq, null, null, 1e-5f),
                be -> be.softmax(seq),
                be -> be.attention(seq, seq, seq, 8, false),
                be -> be.attention(seq, ctx, ctx, 5, false),
                be -> be.attention(ctx, ctx, ctx, 4, true),
                be -> be.linear(seq, lw, null),
                be -> be.matmul(a, b, false, false),
                be -> be.matmul(b, a, true, true),
                be -> be.matmul(big1, big2, false, false),
                be -> be.gelu(seq),
                be -> be.geglu(seq),
                be -> be.silu(x),
                be -> be.add(x, Tensor.of(CpuBackendTest.random(new Random(1), 64, 1f), 64, 1, 1)),
                be -> be.upsampleNearest2x(x),
                be -> be.permute(x, 0, 2, 3, 1));
        try (CpuBackend one = new CpuBackend(1); CpuBackend two = new CpuBackend(2); CpuBackend three = new CpuBackend(3)) {
            for (int i = 0; i < ops.size(); i++) {
                float[] r1 = ops.get(i).apply(one).toFloatArray();
                float[] r2 = ops.get(i).apply(two).toFloatArray();
                float[] r3 = ops.get(i).apply(three).toFloatArray();
                assertArrayEquals(r1, r2, "op " + i + ": 1 vs 2 threads");
                assertArrayEquals(r1, r3, "op " + i + ": 1 vs 3 threads");
            }
        }
    }
}
