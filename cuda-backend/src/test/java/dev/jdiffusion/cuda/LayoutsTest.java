package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The host side of the layout kernels: the structs it fills, read by a Java twin of each kernel's
 * index loop ({@code binary_f32}, {@code permute_f32}), must give the CPU backend's results. (The
 * kernels themselves run only on a GPU.)
 */
class LayoutsTest {
    private static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    private static int numel(int[] s) {
        int n = 1;
        for (int d : s) {
            n *= d;
        }
        return n;
    }

    /** binary_f32's loop. */
    private static float[] binary(float[] a, float[] b, long[] st, boolean add) {
        long n = 1;
        for (int d = 0; d < 6; d++) {
            n *= st[d];
        }
        float[] y = new float[(int) n];
        for (long i = 0; i < n; i++) {
            long rest = i;
            long ia = 0;
            long ib = 0;
            for (int d = 5; d >= 0; d--) {
                long c = rest % st[d];
                rest /= st[d];
                ia += c * st[6 + d];
                ib += c * st[12 + d];
            }
            y[(int) i] = add ? a[(int) ia] + b[(int) ib] : a[(int) ia] * b[(int) ib];
        }
        return y;
    }

    /** permute_f32's loop. */
    private static float[] permute(float[] x, long[] p) {
        long n = 1;
        for (int d = 0; d < 6; d++) {
            n *= p[d];
        }
        float[] y = new float[(int) n];
        for (long i = 0; i < n; i++) {
            long rest = i;
            long ix = 0;
            for (int d = 5; d >= 0; d--) {
                long c = rest % p[d];
                rest /= p[d];
                ix += c * p[6 + d];
            }
            y[(int) i] = x[(int) ix];
        }
        return y;
    }

    @Test
    void broadcastingStridesGiveTheCpuBackendsSums() {
        int[][][] cases = {
            {{2, 3, 4, 5}, {2, 3, 1, 1}}, {{2, 3, 4, 5}, {3, 1, 1}}, {{2, 3, 4, 5}, {5}}, {{4, 1, 5}, {1, 3, 1}},
            {{2, 77, 768}, {768}}, {{1, 3, 4}, {2, 3, 4}}, {{7}, {7}},
        };
        try (CpuBackend cpu = new CpuBackend(1)) {
            for (int[][] c : cases) {
                float[] a = random(numel(c[0]), 1);
                float[] b = random(numel(c[1]), 2);
                long[] st = Layouts.binary(c[0], c[1]);
                assertArrayEquals(cpu.add(Tensor.of(a, c[0]), Tensor.of(b, c[1])).toFloatArray(), binary(a, b, st, true));
                assertArrayEquals(cpu.mul(Tensor.of(a, c[0]), Tensor.of(b, c[1])).toFloatArray(), binary(a, b, st, false));
            }
        }
        assertThrows(ShapeException.class, () -> Layouts.binary(new int[] {2, 3}, new int[] {4, 3}));
    }

    @Test
    void permutationStridesGiveTheCpuBackendsCopies() {
        int[][][] cases = {{{2, 3, 4, 5}, {0, 2, 3, 1}}, {{2, 3, 4}, {0, 2, 1}}, {{6, 7}, {1, 0}}, {{2, 3, 4, 5, 6, 2}, {5, 0, 4, 1, 3, 2}}};
        try (CpuBackend cpu = new CpuBackend(1)) {
            for (int[][] c : cases) {
                float[] x = random(numel(c[0]), 3);
                assertArrayEquals(cpu.permute(Tensor.of(x, c[0]), c[1]).toFloatArray(), permute(x, Layouts.permute(c[0], c[1])));
            }
        }
        assertThrows(ShapeException.class, () -> Layouts.permute(new int[] {2, 3}, new int[] {0, 0}));
        assertThrows(ShapeException.class, () -> Layouts.permute(new int[] {2, 3}, new int[] {0, 1, 2}));
    }
}
