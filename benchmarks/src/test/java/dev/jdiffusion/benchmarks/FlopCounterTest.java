package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

class FlopCounterTest {
    @Test
    void countsTwoFlopsPerMultiplyAddOfTheHeavyOpsAndKeepsTheShapes() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            FlopCounter c = new FlopCounter(cpu);
            assertArrayEquals(new int[] {2, 3, 5}, c.linear(Tensor.zeros(2, 3, 4), Tensor.zeros(5, 4), null).shape());
            assertEquals(2.0 * 6 * 5 * 4, c.flops());
            Tensor y = c.conv2d(Tensor.zeros(2, 3, 8, 8), Tensor.zeros(6, 3, 3, 3), null, 2, 1);
            assertArrayEquals(new int[] {2, 6, 4, 4}, y.shape());
            assertEquals(240 + 2.0 * 2 * 6 * 16 * 27, c.flops());
            double before = c.flops();
            assertArrayEquals(new int[] {1, 10, 8}, c.attention(Tensor.zeros(1, 10, 8), Tensor.zeros(1, 7, 8),
                    Tensor.zeros(1, 7, 8), 2, false).shape());
            assertEquals(before + 4.0 * 10 * 7 * 8, c.flops());
            before = c.flops();
            assertArrayEquals(new int[] {3, 4, 6}, c.matmul(Tensor.zeros(3, 4, 5), Tensor.zeros(3, 6, 5), false, true).shape());
            assertEquals(before + 2.0 * 3 * 4 * 6 * 5, c.flops());
            before = c.flops();
            c.groupNorm(Tensor.zeros(1, 32, 4, 4), 32, null, null, 1e-5f, true);
            assertEquals(before, c.flops(), "norms are not counted");
        }
    }
}
