package dev.jdiffusion.core.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Arrays;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every op of the CPU backend against the float64 {@link Reference}, with the error bound stated
 * per op, on shapes that are not multiples of the vector width or of the GEMM blocking.
 */
class CpuBackendTest {
    /** Unit roundoff of float32. */
    private static final double U = 0x1p-24;

    private static CpuBackend cpu;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    static float[] random(Random rnd, int n, float scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * scale);
        }
        return x;
    }

    /** Rounds values through a 16-bit storage type so that the reference sees what the kernel sees. */
    static float[] roundTo(DType t, float[] x) {
        return t == DType.F32 ? x : Tensor.ofHalf(x, t, x.length).toFloatArray();
    }

    static Tensor tensor(DType t, float[] x, int... shape) {
        return t == DType.F32 ? Tensor.of(x.clone(), shape) : Tensor.ofHalf(x, t, shape);
    }

    // ---- matmul / linear: a dot product of length K has |error| ≤ γ_K Σ|a·b|, γ_K = K·u/(1−K·u) --------

    static void assertDotProducts(double[] ref, double[] abs, float[] got, int k, String what) {
        assertEquals(ref.length, got.length, what + ": length");
        double gamma = (k + 2) * U / (1 - (k + 2) * U);
        for (int i = 0; i < ref.length; i++) {
            double bound = gamma * abs[i] + Double.MIN_NORMAL;
            double err = Math.abs(got[i] - ref[i]);
            if (!(err <= bound)) {
                fail(what + ": element " + i + " is " + got[i] + ", expected " + ref[i] + " (error " + err + " > bound "
                        + bound + ")");
            }
        }
    }

    @ParameterizedTest(name = "matmul batch={0} M={1} N={2} K={3} transA={4} transB={5} {6}")
    @CsvSource({
        "1, 1, 1, 1, false, false, F32",
        "1, 17, 33, 5, false, false, F32",
        "3, 50, 70, 129, false, false, F32",
        "2, 9, 100, 400, false, true, F32",
        "2, 31, 47, 401, true, false, F32",
        "2, 23, 49, 77, true, true, F32",
        "1, 1030, 20, 30, false, false, F32",
        "1, 40, 3100, 12, false, false, F32",
        "2, 13, 61, 390, false, true, F16",
        "2, 13, 61, 390, false, false, BF16",
        "1, 19, 50, 70, true, false, F16",
        // several A row blocks, B in two column chunks, 12 K blocks (see Gemm's blocking constants)
        "1, 150, 1500, 3000, false, false, F32",
        "1, 150, 1500, 3000, true, true, F16",
    })
    void matmulMatchesFloat64(int batch, int m, int n, int k, boolean transA, boolean transB, DType bType) {
        Random rnd = new Random(31L * m + n + k);
        float[] a = random(rnd, batch * m * k, 1f);
        float[] b = roundTo(bType, random(rnd, batch * k * n, 1f));
        Tensor ta = Tensor.of(a.clone(), transA ? new int[] {batch, k, m} : new int[] {batch, m, k});
        Tensor tb = tensor(bType, b, transB ? new int[] {batch, n, k} : new int[] {batch, k, n});
        Tensor c = cpu.matmul(ta, tb, transA, transB);
        assertArrayEquals(new int[] {batch, m, n}, c.shape());
        assertDotProducts(Reference.matmul(a, b, batch, batch, m, n, k, transA, transB),
                Reference.matmulAbs(a, b, batch, batch, m, n, k, transA, transB), c.toFloatArray(), k, "matmul");
    }

    @Test
    void gemmSplitKeepsBlocksInCacheAndEveryThreadBusy() {
        for (int threads : new int[] {1, 2, 3, 16}) {
            for (int[] shape : new int[][] {{1, 683, 80, 2880}, {1, 107, 4, 11520}, {2, 27, 128, 576}, {1, 1, 1, 7},
                    {3, 2, 1, 300}, {1, 43, 320, 1280}, {1, 2000, 3, 40}, {1, 683, 80, 320}, {1, 171, 160, 640}}) {
                int batch = shape[0], panels = shape[1], slivers = shape[2], k = shape[3];
                int[] split = Gemm.split(batch, panels, slivers, k, threads, false);
                String at = java.util.Arrays.toString(shape) + " on " + threads + " threads: " + java.util.Arrays.toString(split);
                assertTrue(split[0] >= 1 && split[0] <= panels && split[1] >= 1 && split[1] <= slivers, at);
                assertTrue(valid(panels, slivers, k, split[0], split[1], split[2] == 1), "blocks in cache, " + at);
                long tasks = (long) batch * split[0] * split[1];
                assertTrue(tasks >= Math.min(threads, (long) batch * panels * slivers), "a task per thread, " + at);
                if (threads == 1) {
                    // one thread: no valid split of either order costs less (packing, and C's passes when K blocks are outermost)
                    double cost = oneThreadCost(batch, panels, slivers, k, split[0], split[1], split[2] == 1);
                    for (int order = 0; order <= 1; order++) {
                        for (int r = 1; r <= panels; r++) {
                            for (int cg = 1; cg <= slivers; cg++) {
                                assertTrue(!valid(panels, slivers, k, r, cg, order == 1)
                                        || oneThreadCost(batch, panels, slivers, k, r, cg, order == 1) >= cost * (1 - 1e-12),
                                        "least cost, " + at + " vs " + r + " × " + cg + " order " + order);
                            }
                        }
                    }
                }
            }
        }
        // K = 320 at 64×64 (8192 tokens, a 2560-wide projection): column strips, C read and written once
        assertEquals(1, Gemm.split(1, 683, 80, 320, 2, false)[2]);
        // the column-strip cases of conv2dMatchesFloat64 and linearMatchesFloat64
        assertEquals(1, Gemm.split(1, 2, 4, 360, 2, false)[2]);
        assertEquals(1, Gemm.split(1, 25, 2, 700, 2, false)[2]);
        // the 320-channel 3×3 convolution (K = 2880): K blocks outermost
        assertEquals(0, Gemm.split(1, 27, 128, 2880, 2, false)[2]);
    }

    @Test
    void sliverGroupsFitBesideTheABlockInL2() {
        // the 320-channel 3×3 convolution's A block (27 panels of one K block): the largest group
        assertEquals(Gemm.MAX_SLIVER_GROUP, Gemm.sliverGroup(27L * Gemm.MR * Gemm.KC));
        // the largest A block leaves room for one or two
        assertTrue(Gemm.sliverGroup((long) Gemm.MAX_PANELS * Gemm.MR * Gemm.KC) <= 2);
        for (long panels = 0; panels <= 4L * Gemm.MAX_PANELS; panels++) {
            long aFloats = panels * Gemm.MR * Gemm.KC;
            int g = Gemm.sliverGroup(aFloats);
            assertTrue(g >= 1 && g <= Gemm.MAX_SLIVER_GROUP, panels + " panels: " + g);
            assertTrue(g == 1 || 4 * aFloats + 4L * g * Gemm.NR * Gemm.KC <= Gemm.L2_BYTES, panels + " panels: " + g);
            assertTrue(g == Gemm.MAX_SLIVER_GROUP || 4 * aFloats + 4L * (g + 1) * Gemm.NR * Gemm.KC > Gemm.L2_BYTES,
                    panels + " panels: room for more than " + g);
        }
    }

    /** A blocks in L2 (for column strips: for the whole of K), and with K blocks outermost C blocks in cache. */
    private static boolean valid(int panels, int slivers, int k, int r, int cg, boolean strips) {
        long rows = Gemm.ceilDiv(panels, r);
        if (strips) {
            return rows <= Gemm.MAX_PANELS && rows * k <= (long) Gemm.MAX_PANELS * Gemm.KC;
        }
        return rows <= Gemm.MAX_PANELS
                && (cg == slivers || rows * Gemm.MR * Gemm.ceilDiv(slivers, cg) * Gemm.NR <= Gemm.C_BLOCK_FLOATS);
    }

    private static double oneThreadCost(int batch, int panels, int slivers, int k, int r, int cg, boolean strips) {
        double packed = (double) batch * ((double) panels * Gemm.MR * cg + (double) slivers * Gemm.NR * r);
        double cPasses = strips ? 1 : Gemm.ceilDiv(k, Gemm.KC);
        return packed + Gemm.C_PASS_COST * cPasses * batch * panels * Gemm.MR * slivers * Gemm.NR / k;
    }

    @Test
    void packersLayOutPanelsAndSliversElementForElement() {
        // whole 16-k blocks (transposed in registers where vectors have 16 lanes) and the k left over,
        // float32 and float16 storage, partial panels and slivers, at an offset into the matrix
        Random rnd = new Random(23);
        int rows = 70, cols = 600;
        for (DType type : new DType[] {DType.F32, DType.F16}) {
            float[] values = roundTo(type, random(rnd, rows * cols, 1f));
            Tensor t = tensor(type, values, new int[] {rows, cols});
            Gemm.PackA packA = Gemm.packA(new Gemm.Matrix(t, 0, cols, false));
            // as B: the stored rows are B's columns (a linear layer's weight), K along the stored row
            Gemm.PackB packB = Gemm.packB(new Gemm.Matrix(t, 0, cols, true));
            for (int[] block : new int[][] {{0, 24, 0, 256}, {5, 31, 40, 37}, {12, 12, 16, 16}, {50, 20, 300, 300},
                    {1, 7, 3, 15}}) {
                int r0 = block[0], count = block[1], k0 = block[2], kc = block[3];
                String at = type + " rows/columns " + r0 + "+" + count + ", k " + k0 + "+" + kc;
                int panels = Gemm.ceilDiv(count, Gemm.MR);
                int off = 5;
                float[] dst = new float[off + panels * Gemm.MR * kc + 2 * CpuBackend.vectorLanes()];
                Arrays.fill(dst, Float.NaN);
                packA.pack(0, r0, count, k0, kc, dst, off);
                assertPanels(values, cols, r0, count, k0, kc, dst, off, Gemm.MR, "A " + at);
                for (int e = off + panels * Gemm.MR * kc + Math.max(0, CpuBackend.vectorLanes() - Gemm.MR); e < dst.length;
                        e++) {
                    assertTrue(Float.isNaN(dst[e]), "A writes at most L − MR floats past its panels, " + at);
                }
                int slivers = Gemm.ceilDiv(count, Gemm.NR);
                float[] bdst = new float[off + slivers * Gemm.NR * kc + 1];
                Arrays.fill(bdst, Float.NaN);
                packB.pack(0, k0, kc, r0, count, bdst, off);
                assertPanels(values, cols, r0, count, k0, kc, bdst, off, Gemm.NR, "B " + at);
                assertTrue(Float.isNaN(bdst[bdst.length - 1]) && Float.isNaN(bdst[off - 1]), "B stays in its slivers, " + at);
            }
        }
    }

    /**
     * Panels of {@code width} stored rows each (A's rows, or B's columns when B is stored transposed):
     * element k of stored row {@code r0 + p·width + r} at {@code dst[off + p·kc·width + k·width + r]}, 0
     * past the {@code count} rows.
     */
    private static void assertPanels(float[] values, int cols, int r0, int count, int k0, int kc, float[] dst, int off,
                                     int width, String what) {
        for (int p = 0; p < Gemm.ceilDiv(count, width); p++) {
            for (int k = 0; k < kc; k++) {
                for (int r = 0; r < width; r++) {
                    int i = p * width + r;
                    float want = i < count ? values[(r0 + i) * cols + k0 + k] : 0f;
                    assertEquals(want, dst[off + p * kc * width + k * width + r], what);
                }
            }
        }
    }

    @Test
    void im2colPackerLaysOutSliversElementForElement() {
        // spans in whole vectors with the padding zeroed, short rows (8 × 8), widths that are not a multiple
        // of the vector, stride 2, at an offset into the input and past its first batch entry
        Random rnd = new Random(29);
        int lanes = CpuBackend.vectorLanes();
        // (cin, h, w, kernel, stride, pad); widths of 32 and more: slivers that are one span of an output row
        for (int[] conv : new int[][] {{3, 8, 8, 3, 1, 1}, {2, 13, 11, 3, 1, 1}, {4, 16, 16, 3, 2, 1}, {5, 9, 20, 1, 1, 0},
                {2, 6, 7, 3, 1, 2}, {2, 5, 40, 3, 1, 1}, {3, 4, 32, 3, 1, 1}, {2, 3, 66, 3, 1, 0}, {2, 4, 64, 3, 1, 2}}) {
            int cin = conv[0], h = conv[1], w = conv[2], ks = conv[3], stride = conv[4], pad = conv[5];
            int ho = (h + 2 * pad - ks) / stride + 1, wo = (w + 2 * pad - ks) / stride + 1;
            int xOff = 3;
            float[] x = random(rnd, xOff + 2 * cin * h * w, 1f);
            Gemm.PackB pack = Gemm.packIm2col(x, xOff, cin, h, w, ks, ks, stride, pad, ho, wo);
            int k = cin * ks * ks, n = ho * wo;
            for (int[] block : new int[][] {{0, k, 0, n}, {Math.min(5, k - 1), Math.max(1, k - 7), 3, n - 3}}) {
                int k0 = block[0], kc = block[1], j0 = block[2], nc = block[3];
                String at = Arrays.toString(conv) + " k " + k0 + "+" + kc + ", columns " + j0 + "+" + nc;
                int slivers = Gemm.ceilDiv(nc, Gemm.NR);
                float[] dst = new float[slivers * Gemm.NR * kc + lanes + 1];
                Arrays.fill(dst, Float.NaN);
                pack.pack(1, k0, kc, j0, nc, dst, 0);
                for (int q = 0; q < slivers; q++) {
                    for (int kk = 0; kk < kc; kk++) {
                        int ci = (k0 + kk) / (ks * ks), ky = (k0 + kk) / ks % ks, kx = (k0 + kk) % ks;
                        for (int c = 0; c < Gemm.NR; c++) {
                            int j = j0 + q * Gemm.NR + c;
                            float want = 0f;
                            if (j < j0 + nc) {
                                int iy = j / wo * stride + ky - pad, ix = j % wo * stride + kx - pad;
                                if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                                    want = x[xOff + cin * h * w + (ci * h + iy) * w + ix];
                                }
                            }
                            assertEquals(want, dst[q * kc * Gemm.NR + kk * Gemm.NR + c], at + " sliver " + q + " k " + kk);
                        }
                    }
                }
                assertTrue(Float.isNaN(dst[dst.length - 1]), "at most L − 1 floats past the slivers, " + at);
            }
        }
    }

    @Test
    void gemmWritesCWithoutReadingItAndStartsFromTheBias() {
        // C is overwritten, never read (NaN there would show), for both orders, edge tiles and a bias per row or column
        Random rnd = new Random(17);
        try (WorkerPool pool = new WorkerPool(2)) {
            for (int[] shape : new int[][] {{37, 70, 300}, {30, 45, 700}, {5, 3, 9}}) {
                int m = shape[0], n = shape[1], k = shape[2];
                float[] a = random(rnd, m * k, 1f);
                float[] b = random(rnd, k * n, 1f);
                double[] ref = Reference.matmul(a, b, 1, 1, m, n, k, false, false);
                double[] abs = Reference.matmulAbs(a, b, 1, 1, m, n, k, false, false);
                for (int mode = 0; mode < 3; mode++) {
                    float[] bias = mode == 0 ? null : random(rnd, mode == 1 ? m : n, 1f);
                    float[] c = new float[m * n];
                    Arrays.fill(c, Float.NaN);
                    Gemm.multiply(pool, 1, m, n, k, Gemm.packA(new Gemm.Matrix(Tensor.of(a, m, k), 0, k, false)), true,
                            Gemm.packB(new Gemm.Matrix(Tensor.of(b, k, n), 0, n, false)), c, 0, 0, n, bias, mode == 1);
                    double[] expected = ref.clone();
                    double[] bound = abs.clone();
                    for (int i = 0; i < m * n; i++) {
                        float add = bias == null ? 0f : mode == 1 ? bias[i / n] : bias[i % n];
                        expected[i] += add;
                        bound[i] += Math.abs(add);
                    }
                    assertDotProducts(expected, bound, c, k + 1, Arrays.toString(shape) + " bias mode " + mode);
                }
            }
        }
    }

    @Test
    void matmulSharesAnUnbatchedOperand() {
        Random rnd = new Random(5);
        int batch = 3, m = 20, n = 35, k = 18;
        float[] a = random(rnd, batch * m * k, 1f);
        float[] b = random(rnd, k * n, 1f);
        Tensor c = cpu.matmul(Tensor.of(a.clone(), batch, m, k), Tensor.of(b.clone(), k, n), false, false);
        assertDotProducts(Reference.matmul(a, b, batch, 1, m, n, k, false, false),
                Reference.matmulAbs(a, b, batch, 1, m, n, k, false, false), c.toFloatArray(), k, "shared b");
        float[] a2 = random(rnd, m * k, 1f);
        float[] b2 = random(rnd, batch * k * n, 1f);
        Tensor c2 = cpu.matmul(Tensor.of(a2.clone(), m, k), Tensor.of(b2.clone(), batch, k, n), false, false);
        assertDotProducts(Reference.matmul(a2, b2, 1, batch, m, n, k, false, false),
                Reference.matmulAbs(a2, b2, 1, batch, m, n, k, false, false), c2.toFloatArray(), k, "shared a");
    }

    @ParameterizedTest(name = "linear rows={0} in={1} out={2} {3}")
    @CsvSource({"1, 768, 77, F32", "154, 320, 1280, F16", "37, 61, 50, BF16", "300, 400, 19, F32", "300, 700, 45, F16",
        "3, 0, 5, F32"})
    void linearMatchesFloat64(int rows, int in, int out, DType wType) {
        Random rnd = new Random(rows + in + out);
        float[] x = random(rnd, rows * in, 1f);
        float[] w = roundTo(wType, random(rnd, out * in, 0.1f));
        float[] bias = roundTo(wType, random(rnd, out, 1f));
        Tensor y = cpu.linear(Tensor.of(x.clone(), 1, rows, in), tensor(wType, w, out, in), tensor(wType, bias, out));
        assertArrayEquals(new int[] {1, rows, out}, y.shape());
        double[] ref = Reference.matmul(x, w, 1, 1, rows, out, in, false, true);
        double[] abs = Reference.matmulAbs(x, w, 1, 1, rows, out, in, false, true);
        for (int i = 0; i < ref.length; i++) {
            ref[i] += bias[i % out];
            abs[i] += Math.abs(bias[i % out]);
        }
        assertDotProducts(ref, abs, y.toFloatArray(), in + 1, "linear");
    }

    @ParameterizedTest(name = "linearGeglu rows={0} in={1} features={2} {3} bias={4}")
    @CsvSource({"37, 700, 48, F16, true", "300, 320, 32, F32, false", "5, 40, 16, BF16, true", "13, 30, 20, F16, true",
        "2, 5000, 16, F32, true", "4, 0, 16, F32, true"})
    void linearGegluIsGegluOfLinearBitForBit(int rows, int in, int features, DType wType, boolean withBias) {
        // fused where features are a multiple of the vector length (20 is not: the unfused ops)
        Random rnd = new Random(rows * 31L + in);
        Tensor x = Tensor.of(random(rnd, 2 * rows * in, 1f), 2, rows, in);
        Tensor w = tensor(wType, roundTo(wType, random(rnd, 2 * features * in, 0.1f)), 2 * features, in);
        Tensor bias = withBias ? tensor(wType, roundTo(wType, random(rnd, 2 * features, 1f)), 2 * features) : null;
        Tensor fused = cpu.linearGeglu(x, w, bias);
        assertArrayEquals(new int[] {2, rows, features}, fused.shape());
        assertArrayEquals(cpu.geglu(cpu.linear(x, w, bias)).toFloatArray(), fused.toFloatArray());
        try (CpuBackend one = new CpuBackend(1)) {
            assertArrayEquals(fused.toFloatArray(), one.linearGeglu(x, w, bias).toFloatArray());
        }
    }

    // ---- conv2d ----------------------------------------------------------------------------------------

    @ParameterizedTest(name = "conv2d N={0} Cin={1} {2}x{3} Cout={4} k={5} s={6} p={7} {8}")
    @CsvSource({
        "2, 3, 9, 11, 5, 3, 1, 1, F32",
        "1, 4, 70, 67, 6, 3, 1, 1, F32",
        "2, 5, 13, 17, 7, 3, 2, 1, F32",
        "1, 50, 8, 8, 9, 3, 1, 1, F16",
        "2, 6, 10, 9, 11, 1, 1, 0, F32",
        "1, 7, 12, 10, 4, 1, 1, 0, BF16",
        "1, 3, 7, 7, 2, 3, 1, 0, F32",
        "1, 2, 16, 16, 3, 4, 2, 1, F32",
        "1, 4, 64, 64, 8, 3, 2, 1, F32",
        // two K blocks in column strips, the batch entries' columns one column space, partial panel and slivers
        "2, 40, 9, 7, 13, 3, 1, 1, F16",
        // the im2col matrix (576 × 8192) is packed in two column chunks
        "1, 64, 128, 64, 13, 3, 1, 1, F16",
        // a batch whose columns share each packed weight panel: partial slivers at each image's end
        "3, 20, 7, 9, 30, 3, 1, 1, F16",
        "2, 40, 12, 12, 50, 3, 1, 1, F32",
    })
    void conv2dMatchesFloat64(int n, int cin, int h, int w, int cout, int k, int stride, int pad, DType wType) {
        Random rnd = new Random(n * 1000 + cin * 100 + h + w + k);
        float[] x = random(rnd, n * cin * h * w, 1f);
        float[] wt = roundTo(wType, random(rnd, cout * cin * k * k, 0.2f));
        float[] bias = random(rnd, cout, 1f);
        Tensor y = cpu.conv2d(Tensor.of(x.clone(), n, cin, h, w), tensor(wType, wt, cout, cin, k, k),
                Tensor.of(bias.clone(), cout), stride, pad);
        int ho = (h + 2 * pad - k) / stride + 1;
        int wo = (w + 2 * pad - k) / stride + 1;
        assertArrayEquals(new int[] {n, cout, ho, wo}, y.shape());
        assertDotProducts(Reference.conv2d(x, wt, bias, n, cin, h, w, cout, k, k, stride, pad, false),
                Reference.conv2d(x, wt, bias, n, cin, h, w, cout, k, k, stride, pad, true), y.toFloatArray(),
                cin * k * k + 1, "conv2d");
    }

    // ---- normalisation: outputs are O(1); |error| ≤ 1e-5 (1 + |ref|) ------------------------------------

    static void assertClose(double[] ref, float[] got, double rel, double abs, String what) {
        assertEquals(ref.length, got.length, what + ": length");
        for (int i = 0; i < ref.length; i++) {
            double err = Math.abs(got[i] - ref[i]);
            if (!(err <= abs + rel * Math.abs(ref[i]))) {
                fail(what + ": element " + i + " is " + got[i] + ", expected " + ref[i] + " (error " + err + ")");
            }
        }
    }

    @ParameterizedTest(name = "groupNorm N={0} C={1} spatial={2} groups={3} silu={4}")
    @CsvSource({"2, 64, 37, 32, false", "1, 32, 4096, 32, true", "3, 6, 1, 3, true", "2, 12, 1000, 4, false"})
    void groupNormMatchesFloat64(int n, int c, int spatial, int groups, boolean silu) {
        Random rnd = new Random(n + c + spatial);
        float[] x = random(rnd, n * c * spatial, 3f);
        for (int i = 0; i < x.length; i++) {
            x[i] += 5f; // an offset, so a one-pass variance would lose digits
        }
        float[] g = random(rnd, c, 1f);
        float[] b = random(rnd, c, 1f);
        Tensor y = cpu.groupNorm(Tensor.of(x.clone(), n, c, spatial), groups, Tensor.of(g, c), Tensor.of(b, c), 1e-5f,
                silu);
        assertClose(Reference.groupNorm(x, n, c, spatial, groups, g, b, 1e-5, silu), y.toFloatArray(), 1e-5, 1e-5,
                "groupNorm");
    }

    @ParameterizedTest(name = "layerNorm rows={0} d={1}")
    @CsvSource({"1, 1", "77, 768", "5, 1283", "33, 17"})
    void layerNormMatchesFloat64(int rows, int d) {
        Random rnd = new Random(rows * d);
        float[] x = random(rnd, rows * d, 2f);
        float[] g = random(rnd, d, 1f);
        float[] b = random(rnd, d, 1f);
        Tensor y = cpu.layerNorm(Tensor.of(x.clone(), rows, d), Tensor.of(g, d), Tensor.of(b, d), 1e-5f);
        assertClose(Reference.layerNorm(x, d, g, b, 1e-5), y.toFloatArray(), 1e-5, 1e-5, "layerNorm");
    }

    @ParameterizedTest(name = "softmax rows={0} d={1}")
    @CsvSource({"3, 1", "10, 77", "4, 4096", "7, 33"})
    void softmaxMatchesFloat64(int rows, int d) {
        Random rnd = new Random(rows + d);
        float[] x = random(rnd, rows * d, 4f);
        Tensor y = cpu.softmax(Tensor.of(x.clone(), rows, d));
        // p = exp(x - max) / Σ: a few ulp from exp, plus the sum's rounding (d·u relative)
        assertClose(Reference.softmax(x, d), y.toFloatArray(), 8 * U + d * U, 0, "softmax");
    }

    // ---- attention: a convex combination of v; |error| ≤ 1e-5 · max|v| -----------------------------------

    @ParameterizedTest(name = "attention B={0} H={1} D={2} Nq={3} Nk={4} causal={5}")
    @CsvSource({
        "2, 3, 40, 70, 200, false",
        "1, 2, 64, 77, 77, true",
        "2, 1, 17, 130, 9, false",
        "1, 8, 40, 257, 257, false",
        "2, 2, 160, 64, 77, false",
        "1, 1, 8, 5, 400, true",
        "2, 4, 16, 64, 64, false",
        "2, 4, 16, 64, 77, false",
        "1, 3, 24, 1, 77, false",
    })
    void attentionMatchesFloat64(int batch, int heads, int dh, int nq, int nk, boolean causal) {
        Random rnd = new Random(batch + heads + dh + nq + nk);
        int c = heads * dh;
        float[] q = random(rnd, batch * nq * c, 1f);
        float[] k = random(rnd, batch * nk * c, 1f);
        float[] v = random(rnd, batch * nk * c, 1f);
        Tensor o = cpu.attention(Tensor.of(q.clone(), batch, nq, c), Tensor.of(k.clone(), batch, nk, c),
                Tensor.of(v.clone(), batch, nk, c), heads, causal);
        double maxV = 0;
        for (float x : v) {
            maxV = Math.max(maxV, Math.abs(x));
        }
        assertClose(Reference.attention(q, k, v, batch, heads, dh, nq, nk, causal), o.toFloatArray(), 0, 1e-5 * maxV,
                "attention");
    }

    @Test
    void attentionFollowsAMaximumThatMovesInEveryKeyBlock() {
        // scores that grow along the keys, for some queries faster than for others: each key block raises
        // the running maximum in some lanes, so that earlier sums and outputs are rescaled again and again
        int batch = 1, heads = 2, dh = 40, nq = 45, nk = 1001, c = heads * dh;
        Random rnd = new Random(31);
        float[] q = new float[nq * c];
        float[] k = new float[nk * c];
        float[] v = random(rnd, nk * c, 1f);
        for (int i = 0; i < nq; i++) {
            for (int d = 0; d < c; d++) {
                q[i * c + d] = (i % 3 == 0 ? 0.05f : 0.02f) * (1 + i % 5);
            }
        }
        for (int j = 0; j < nk; j++) {
            for (int d = 0; d < c; d++) {
                k[j * c + d] = j * 0.01f + 0.1f * (float) rnd.nextGaussian();
            }
        }
        for (boolean causal : new boolean[] {false, true}) {
            Tensor o = cpu.attention(Tensor.of(q.clone(), batch, nq, c), Tensor.of(k.clone(), batch, nk, c),
                    Tensor.of(v.clone(), batch, nk, c), heads, causal);
            assertClose(Reference.attention(q, k, v, batch, heads, dh, nq, nk, causal), o.toFloatArray(), 0, 1e-5,
                    "attention, causal " + causal);
        }
    }

    // ---- activations: relative error over [-9, 9]: a few ulp near 0; in the far negative tail the rounding
    // of the exp argument (x²/2 for GELU, up to 70 for the tanh form) dominates ----------------------------

    enum Activation {
        SILU(2e-6, Reference::silu, t -> cpu.silu(t)),
        QUICK_GELU(2e-6, Reference::quickGelu, t -> cpu.quickGelu(t)),
        GELU(5e-6, Reference::gelu, t -> cpu.gelu(t)),
        GELU_TANH(1e-5, Reference::geluTanh, t -> cpu.geluTanh(t));

        final double rel;
        final DoubleUnaryOperator ref;
        final Function<Tensor, Tensor> op;

        Activation(double rel, DoubleUnaryOperator ref, Function<Tensor, Tensor> op) {
            this.rel = rel;
            this.ref = ref;
            this.op = op;
        }
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void activationsMatchFloat64(Activation act) {
        int n = 100_003;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = -9f + 18f * i / (n - 1);
        }
        float[] y = act.op.apply(Tensor.of(x.clone(), n)).toFloatArray();
        double[] ref = new double[n];
        for (int i = 0; i < n; i++) {
            ref[i] = act.ref.applyAsDouble(x[i]);
        }
        assertClose(ref, y, act.rel, 1e-37, act.name());
    }

    @Test
    void gegluIsValueTimesGeluOfGate() {
        Random rnd = new Random(3);
        int rows = 9, f = 37;
        float[] x = random(rnd, rows * 2 * f, 2f);
        float[] y = cpu.geglu(Tensor.of(x.clone(), 1, rows, 2 * f)).toFloatArray();
        double[] ref = new double[rows * f];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < f; i++) {
                ref[r * f + i] = x[r * 2 * f + i] * Reference.gelu(x[r * 2 * f + f + i]);
            }
        }
        assertClose(ref, y, 6e-6, 1e-37, "geglu");
    }

    // ---- elementwise: exactly the float result of the same operation -----------------------------------

    @Test
    void addAndMulBroadcastLikeNumpy() {
        Random rnd = new Random(11);
        int[][][] cases = {
            {{2, 5, 7, 9}, {2, 5, 7, 9}},
            {{2, 5, 7, 9}, {2, 5, 1, 1}},
            {{2, 5, 7, 9}, {5, 1, 1}},
            {{3, 77, 768}, {768}},
            {{2, 1, 4}, {3, 1}},
            {{4, 1}, {1, 4, 6}},
            {{1}, {2, 3}},
        };
        for (int[][] cs : cases) {
            int[] sa = cs[0];
            int[] sb = cs[1];
            float[] a = random(rnd, (int) dev.jdiffusion.core.tensor.Shapes.numel(sa), 1f);
            float[] b = random(rnd, (int) dev.jdiffusion.core.tensor.Shapes.numel(sb), 1f);
            Tensor sum = cpu.add(Tensor.of(a, sa), Tensor.of(b, sb));
            Tensor prod = cpu.mul(Tensor.of(a, sa), Tensor.of(b, sb));
            int rank = Math.max(sa.length, sb.length);
            int[] pa = pad(sa, rank);
            int[] pb = pad(sb, rank);
            int[] out = new int[rank];
            for (int i = 0; i < rank; i++) {
                out[i] = Math.max(pa[i], pb[i]);
            }
            assertArrayEquals(out, sum.shape(), java.util.Arrays.toString(sa) + " + " + java.util.Arrays.toString(sb));
            float[] s = sum.toFloatArray();
            float[] p = prod.toFloatArray();
            int[] idx = new int[rank];
            for (int flat = 0; flat < s.length; flat++) {
                int rem = flat;
                for (int i = rank - 1; i >= 0; i--) {
                    idx[i] = rem % out[i];
                    rem /= out[i];
                }
                float x = a[index(idx, pa)];
                float y = b[index(idx, pb)];
                assertEquals(x + y, s[flat], 0f);
                assertEquals(x * y, p[flat], 0f);
            }
        }
        float[] a = random(rnd, 1001, 1f);
        float[] sc = cpu.scale(Tensor.of(a, 7, 11, 13), 0.18215f).toFloatArray();
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i] * 0.18215f, sc[i], 0f);
        }
    }

    private static int[] pad(int[] s, int rank) {
        int[] p = new int[rank];
        java.util.Arrays.fill(p, 1);
        System.arraycopy(s, 0, p, rank - s.length, s.length);
        return p;
    }

    private static int index(int[] idx, int[] shape) {
        int off = 0;
        for (int i = 0; i < shape.length; i++) {
            off = off * shape[i] + (shape[i] == 1 ? 0 : idx[i]);
        }
        return off;
    }

    // ---- layout ops: exact ------------------------------------------------------------------------------

    @Test
    void upsampleConcatPermuteEmbedding() {
        Random rnd = new Random(2);
        float[] x = random(rnd, 2 * 3 * 5 * 7, 1f);
        float[] up = cpu.upsampleNearest2x(Tensor.of(x, 2, 3, 5, 7)).toFloatArray();
        for (int p = 0; p < 6; p++) {
            for (int y = 0; y < 10; y++) {
                for (int xx = 0; xx < 14; xx++) {
                    assertEquals(x[p * 35 + (y / 2) * 7 + xx / 2], up[p * 140 + y * 14 + xx], 0f);
                }
            }
        }
        float[] a = random(rnd, 2 * 3 * 4, 1f);
        float[] b = random(rnd, 2 * 5 * 4, 1f);
        Tensor cat = cpu.concat(1, Tensor.of(a, 2, 3, 4), Tensor.of(b, 2, 5, 4));
        assertArrayEquals(new int[] {2, 8, 4}, cat.shape());
        float[] cv = cat.toFloatArray();
        for (int n = 0; n < 2; n++) {
            for (int c = 0; c < 8; c++) {
                for (int i = 0; i < 4; i++) {
                    float want = c < 3 ? a[(n * 3 + c) * 4 + i] : b[(n * 5 + c - 3) * 4 + i];
                    assertEquals(want, cv[(n * 8 + c) * 4 + i], 0f);
                }
            }
        }
        float[] t = random(rnd, 2 * 3 * 4 * 5, 1f);
        Tensor perm = cpu.permute(Tensor.of(t, 2, 3, 4, 5), 0, 2, 3, 1);
        assertArrayEquals(new int[] {2, 4, 5, 3}, perm.shape());
        float[] pv = perm.toFloatArray();
        for (int n = 0; n < 2; n++) {
            for (int c = 0; c < 3; c++) {
                for (int h = 0; h < 4; h++) {
                    for (int w = 0; w < 5; w++) {
                        assertEquals(t[((n * 3 + c) * 4 + h) * 5 + w], pv[((n * 4 + h) * 5 + w) * 3 + c], 0f);
                    }
                }
            }
        }
        float[] table = random(rnd, 10 * 6, 1f);
        float[] e = cpu.embedding(Tensor.ofHalf(table, DType.F16, 10, 6), new int[] {3, 0, 9, 3}).toFloatArray();
        float[] half = roundTo(DType.F16, table);
        int[] ids = {3, 0, 9, 3};
        for (int i = 0; i < 4; i++) {
            for (int d = 0; d < 6; d++) {
                assertEquals(half[ids[i] * 6 + d], e[i * 6 + d], 0f);
            }
        }
    }

    @Test
    void timestepEmbeddingFollowsLdm() {
        float[] ts = {0f, 1f, 999f, 500.5f};
        int dim = 320;
        float[] e = cpu.timestepEmbedding(ts, dim).toFloatArray();
        for (int n = 0; n < ts.length; n++) {
            for (int i = 0; i < dim / 2; i++) {
                float freq = (float) Math.exp(-Math.log(10000) * i / (dim / 2));
                double arg = ts[n] * freq;
                assertEquals(Math.cos(arg), e[n * dim + i], 1e-6, "cos " + n + "," + i);
                assertEquals(Math.sin(arg), e[n * dim + dim / 2 + i], 1e-6, "sin " + n + "," + i);
            }
        }
        float[] odd = cpu.timestepEmbedding(new float[] {3f}, 7, 10000f, false, 1f).toFloatArray();
        assertEquals(Math.sin(3.0), odd[0], 1e-6);
        assertEquals(Math.cos(3.0), odd[3], 1e-6);
        assertEquals(0f, odd[6], 0f);
    }

    // ---- bad arguments name the shapes --------------------------------------------------------------------

    @Test
    void badShapesNameBothShapes() {
        Tensor a = Tensor.zeros(2, 3, 4);
        Tensor b = Tensor.zeros(5, 6);
        ShapeException e = assertThrows(ShapeException.class, () -> cpu.matmul(a, b, false, false));
        assertTrue(e.getMessage().contains("[2, 3, 4]") && e.getMessage().contains("[5, 6]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> cpu.add(Tensor.zeros(2, 3), Tensor.zeros(4)));
        assertTrue(e.getMessage().contains("[2, 3]") && e.getMessage().contains("[4]"), e.getMessage());
        e = assertThrows(ShapeException.class,
                () -> cpu.conv2d(Tensor.zeros(1, 3, 8, 8), Tensor.zeros(4, 2, 3, 3), null, 1, 1));
        assertTrue(e.getMessage().contains("[1, 3, 8, 8]") && e.getMessage().contains("[4, 2, 3, 3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> cpu.linear(Tensor.zeros(2, 7), Tensor.zeros(3, 8), null));
        assertTrue(e.getMessage().contains("[2, 7]") && e.getMessage().contains("[3, 8]"), e.getMessage());
        e = assertThrows(ShapeException.class,
                () -> cpu.attention(Tensor.zeros(1, 4, 8), Tensor.zeros(1, 5, 8), Tensor.zeros(1, 6, 8), 2, false));
        assertTrue(e.getMessage().contains("[1, 5, 8]") && e.getMessage().contains("[1, 6, 8]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> cpu.concat(1, Tensor.zeros(2, 3), Tensor.zeros(3, 3)));
        assertTrue(e.getMessage().contains("[2, 3]") && e.getMessage().contains("[3, 3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> cpu.groupNorm(Tensor.zeros(1, 6, 4), 4, null, null, 1e-5f, false));
        assertTrue(e.getMessage().contains("[1, 6, 4]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> Tensor.zeros(2, -3));
        assertTrue(e.getMessage().contains("[2, -3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> Tensor.zeros(2, 3).reshape(4, 2));
        assertTrue(e.getMessage().contains("[2, 3]") && e.getMessage().contains("[4, 2]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> cpu.embedding(Tensor.zeros(4, 2), new int[] {4}));
        // a residual is the output's shape exactly: one that add would broadcast is refused
        e = assertThrows(ShapeException.class, () -> cpu.linear(Tensor.zeros(2, 7), Tensor.zeros(3, 7), null, Tensor.zeros(3)));
        assertTrue(e.getMessage().contains("[3]") && e.getMessage().contains("[2, 3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> cpu.conv2d(Tensor.zeros(1, 3, 8, 8), Tensor.zeros(4, 3, 3, 3), null, 1, 1,
                Tensor.zeros(1, 4, 1, 1)));
        assertTrue(e.getMessage().contains("[1, 4, 1, 1]") && e.getMessage().contains("[1, 4, 8, 8]"), e.getMessage());
    }

    @Test
    void residualsAddAfterTheProduct() {
        Random rnd = new Random(90);
        Tensor x = Tensor.of(random(rnd, 105, 1f), 3, 5, 7);
        Tensor w = Tensor.of(random(rnd, 42, 1f), 6, 7);
        Tensor b = Tensor.of(random(rnd, 6, 1f), 6);
        Tensor r = Tensor.of(random(rnd, 90, 1f), 3, 5, 6);
        assertArrayEquals(cpu.add(cpu.linear(x, w, b), r).toFloatArray(), cpu.linear(x, w, b, r).toFloatArray());
        assertArrayEquals(cpu.linear(x, w, b).toFloatArray(), cpu.linear(x, w, b, null).toFloatArray());
        Tensor img = Tensor.of(random(rnd, 180, 1f), 2, 3, 6, 5);
        Tensor k = Tensor.of(random(rnd, 108, 1f), 4, 3, 3, 3);
        Tensor rc = Tensor.of(random(rnd, 72, 1f), 2, 4, 3, 3);
        assertArrayEquals(cpu.add(cpu.conv2d(img, k, null, 2, 1), rc).toFloatArray(),
                cpu.conv2d(img, k, null, 2, 1, rc).toFloatArray());
    }
}
