package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * Java twins of the tensor-core kernels in {@code linalg.cu}: the product ({@code tc_stage},
 * {@code gemm_tc_tile} with the arguments {@code gemm_tc} and {@code conv2d_tc} give it: the same
 * tiles, staging (which element goes where, bounds, conversion to F16/BF16), warp and fragment
 * offsets and epilogue) and attention ({@code attention_tc_body}: staging, the per-warp scores, each
 * lane pair's online softmax and output columns, masking), with WMMA's 16×16×16 products written
 * out. Run over whole grids they must give the product of the converted operands and, within F16
 * rounding, the CPU backend's attention, so the index arithmetic is checked here; the kernels
 * themselves run only on a GPU ({@code CudaBackendTest}).
 */
class TensorCoreTileTest {
    private static final int BM = 128;
    private static final int BN = 128;
    private static final int BK = 32;
    private static final int LD = BK + 8;
    private static final int WARPS = 8;

    /** An operand as the kernel reads it: element (r, c). */
    private interface Mat {
        float at(int r, int c);
    }

    /** The kernel's {@code Matrix}: row-major rows x cols, or its transpose stored cols x rows. */
    private static Mat matrix(float[] p, long offset, int ld, boolean trans) {
        return (r, c) -> p[(int) (offset + (trans ? (long) c * ld + r : (long) r * ld + c))];
    }

    /** The kernel's {@code Im2col}: B (k, n) of a convolution, k = (ci, ky, kx), n = (oy, ox). */
    private static Mat im2col(float[] x, long base, int h, int w, int kh, int kw, int stride, int pad, int ow) {
        return (k, n) -> {
            int ci = k / (kh * kw);
            int r = k - ci * kh * kw;
            int ky = r / kw;
            int kx = r - ky * kw;
            int oy = n / ow;
            int ox = n - oy * ow;
            int iy = oy * stride - pad + ky;
            int ix = ox * stride - pad + kx;
            return iy < 0 || iy >= h || ix < 0 || ix >= w ? 0f : x[(int) (base + ((long) ci * h + iy) * w + ix)];
        };
    }

    /** {@code to_operand<__half>}: saturating at ±65504, rounded to nearest even. */
    static double toF16(double v) {
        float f = Math.abs(v) > 65504 ? (float) Math.copySign(65504, v) : (float) v;
        return Float.float16ToFloat(Float.floatToFloat16(f));
    }

    /** {@code to_operand<__nv_bfloat16>}: rounded to nearest even (NaN kept). */
    static double toBf16(double v) {
        float f = (float) v;
        if (Float.isNaN(f)) {
            return f;
        }
        int bits = Float.floatToRawIntBits(f);
        bits += 0x7fff + ((bits >>> 16) & 1);
        return Float.intBitsToFloat(bits & 0xffff0000);
    }

    /** tc_stage: rows [r0, r0 + 128) by columns [c0, c0 + 32) into dst[row · LD + col]. */
    private static void stage(Mat mat, int r0, int rows, int c0, int cols, boolean transposed, double[] dst,
                              DoubleUnaryOperator convert) {
        for (int i = 0; i < BM * BK; i++) {
            int r = i / BK;
            int c = i % BK;
            float v = 0f;
            if (r0 + r < rows && c0 + c < cols) {
                v = transposed ? mat.at(c0 + c, r0 + r) : mat.at(r0 + r, c0 + c);
            }
            dst[r * LD + c] = convert.applyAsDouble(v);
        }
    }

    /** gemm_tc_tile for block (bx, by): C (row stride ldc) = A B + bias over rows or columns. */
    private static void tile(Mat a, Mat b, float[] c, long cOff, int ldc, int m, int n, int k, float[] bias,
                             boolean biasOverRows, int bx, int by, DoubleUnaryOperator convert) {
        double[] as = new double[BM * LD];
        double[] bs = new double[BN * LD];
        float[][][][] acc = new float[WARPS][2][4][256];
        int m0 = by * BM;
        int n0 = bx * BN;
        for (int k0 = 0; k0 < k; k0 += BK) {
            stage(a, m0, m, k0, k, false, as, convert);
            stage(b, n0, n, k0, k, true, bs, convert);
            for (int warp = 0; warp < WARPS; warp++) {
                int wm = (warp / 2) * 32;
                int wn = (warp % 2) * 64;
                for (int kk = 0; kk < BK; kk += 16) {
                    for (int i = 0; i < 2; i++) {
                        for (int j = 0; j < 4; j++) {
                            // matrix_a row-major at as + (wm + 16i)·LD + kk; matrix_b col-major at bs + (wn + 16j)·LD + kk
                            int ao = (wm + 16 * i) * LD + kk;
                            int bo = (wn + 16 * j) * LD + kk;
                            for (int r = 0; r < 16; r++) {
                                for (int cc = 0; cc < 16; cc++) {
                                    double s = 0;
                                    for (int t = 0; t < 16; t++) {
                                        s += as[ao + r * LD + t] * bs[bo + cc * LD + t];
                                    }
                                    acc[warp][i][j][r * 16 + cc] += (float) s;
                                }
                            }
                        }
                    }
                }
            }
        }
        for (int warp = 0; warp < WARPS; warp++) {
            int wm = (warp / 2) * 32;
            int wn = (warp % 2) * 64;
            for (int i = 0; i < 2; i++) {
                for (int j = 0; j < 4; j++) {
                    for (int e = 0; e < 256; e++) {
                        int row = m0 + wm + 16 * i + e / 16;
                        int col = n0 + wn + 16 * j + e % 16;
                        if (row < m && col < n) {
                            float v = acc[warp][i][j][e];
                            if (bias != null) {
                                v += bias[biasOverRows ? row : col];
                            }
                            c[(int) (cOff + (long) row * ldc + col)] = v;
                        }
                    }
                }
            }
        }
    }

    private static float[] random(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (2 * r.nextGaussian());
        }
        return v;
    }

    /** max |got − want| ≤ 1e-5 · max(1, max |want|), and every element written (C starts as NaN). */
    private static void assertClose(double[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        double scale = 1;
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            scale = Math.max(scale, Math.abs(want[i]));
            worst = Math.max(worst, Math.abs(want[i] - got[i]));
            assertTrue(!Float.isNaN(got[i]), what + ": element " + i + " not written");
        }
        assertTrue(worst <= 1e-5 * scale, what + ": max error " + worst + " (scale " + scale + ")");
    }

    @Test
    void batchedProductsInEveryLayoutGiveTheProductOfTheConvertedOperands() {
        Random rnd = new Random(5);
        int batch = 2;
        int m = 150;
        int n = 260;
        int k = 70;
        for (boolean bf16 : new boolean[] {false, true}) {
            DoubleUnaryOperator convert = bf16 ? TensorCoreTileTest::toBf16 : TensorCoreTileTest::toF16;
            for (int layout = 0; layout < 4; layout++) {
                boolean transA = (layout & 1) != 0;
                boolean transB = (layout & 2) != 0;
                float[] a = random(rnd, batch * m * k);
                float[] b = random(rnd, k * n); // one B for every batch entry (batch stride 0)
                float[] bias = random(rnd, n);
                float[] c = new float[batch * m * n];
                java.util.Arrays.fill(c, Float.NaN);
                for (int z = 0; z < batch; z++) {
                    // gemm_tc: lda = a.dim(-1), ldb = b.dim(-1), ldc = n
                    Mat ma = matrix(a, (long) z * m * k, transA ? m : k, transA);
                    Mat mb = matrix(b, 0, transB ? k : n, transB);
                    for (int by = 0; by < (m + BM - 1) / BM; by++) {
                        for (int bx = 0; bx < (n + BN - 1) / BN; bx++) {
                            tile(ma, mb, c, (long) z * m * n, n, m, n, k, bias, false, bx, by, convert);
                        }
                    }
                }
                double[] want = new double[batch * m * n];
                for (int z = 0; z < batch; z++) {
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double s = bias[j];
                            for (int t = 0; t < k; t++) {
                                float av = transA ? a[z * m * k + t * m + i] : a[z * m * k + i * k + t];
                                float bv = transB ? b[j * k + t] : b[t * n + j];
                                s += convert.applyAsDouble(av) * convert.applyAsDouble(bv);
                            }
                            want[(z * m + i) * n + j] = s;
                        }
                    }
                }
                assertClose(want, c, (bf16 ? "BF16" : "F16") + " transA " + transA + " transB " + transB);
            }
        }
    }

    @Test
    void convolutionAsAnImplicitGemmOnTheTensorCores() {
        Random rnd = new Random(6);
        int batch = 2;
        int cin = 5;
        int h = 13;
        int w = 19;
        int cout = 140;
        for (int[] cfg : new int[][] {{3, 1, 1}, {3, 2, 1}, {1, 1, 0}}) {
            int ks = cfg[0];
            int stride = cfg[1];
            int pad = cfg[2];
            int oh = (h + 2 * pad - ks) / stride + 1;
            int ow = (w + 2 * pad - ks) / stride + 1;
            int kdim = cin * ks * ks;
            float[] x = random(rnd, batch * cin * h * w);
            float[] wt = random(rnd, cout * kdim);
            float[] bias = random(rnd, cout);
            float[] y = new float[batch * cout * oh * ow];
            java.util.Arrays.fill(y, Float.NaN);
            for (int z = 0; z < batch; z++) {
                // conv2d_tc: A the weight (cout x cin·kh·kw), B the image read as im2col, bias over rows
                Mat ma = matrix(wt, 0, kdim, false);
                Mat mb = im2col(x, (long) z * cin * h * w, h, w, ks, ks, stride, pad, ow);
                for (int by = 0; by < (cout + BM - 1) / BM; by++) {
                    for (int bx = 0; bx < (oh * ow + BN - 1) / BN; bx++) {
                        tile(ma, mb, y, (long) z * cout * oh * ow, oh * ow, cout, oh * ow, kdim, bias, true, bx, by,
                                TensorCoreTileTest::toF16);
                    }
                }
            }
            double[] want = new double[y.length];
            for (int z = 0; z < batch; z++) {
                for (int co = 0; co < cout; co++) {
                    for (int oy = 0; oy < oh; oy++) {
                        for (int ox = 0; ox < ow; ox++) {
                            double s = bias[co];
                            for (int ci = 0; ci < cin; ci++) {
                                for (int ky = 0; ky < ks; ky++) {
                                    for (int kx = 0; kx < ks; kx++) {
                                        int iy = oy * stride - pad + ky;
                                        int ix = ox * stride - pad + kx;
                                        if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                                            s += toF16(wt[co * kdim + (ci * ks + ky) * ks + kx])
                                                    * toF16(x[((z * cin + ci) * h + iy) * w + ix]);
                                        }
                                    }
                                }
                            }
                            want[((z * cout + co) * oh + oy) * ow + ox] = s;
                        }
                    }
                }
            }
            assertClose(want, y, "conv " + ks + "x" + ks + " stride " + stride);
        }
    }

    @Test
    void operandsAreConvertedLikeTheKernelConvertsThem() {
        assertEquals(65504.0, toF16(1e5));
        assertEquals(-65504.0, toF16(-1e5));
        assertTrue(Double.isNaN(toF16(Double.NaN)));
        assertEquals(1.0009765625, toF16(1.0009765625)); // 1 + 2⁻¹⁰: exact in F16
        assertEquals(1.0, toF16(1 + Math.pow(2, -12)));
        assertEquals(1.0078125, toBf16(1.0078125)); // 1 + 2⁻⁷: exact in BF16
        assertEquals(1.0, toBf16(1 + Math.pow(2, -9)));
        assertEquals(1.0, toBf16(1 + Math.pow(2, -8))); // a tie: to even
        assertEquals(3e38, toBf16(3e38), 3e38 * Math.pow(2, -8));
    }

    /** attention_tc_body for one block (bx = query block, head h, batch entry b), as its 4 warps and their lanes run it. */
    private static void attentionBlock(float[] q, float[] k, float[] v, float[] out, int nq, int nk, int heads, int d,
                                       float scale, boolean causal, int bx, int h, int b) {
        int dp = (d + 15) / 16 * 16;
        int lds = dp + 8;
        int width = heads * d;
        int q0 = bx * 64;
        double[] qs = new double[64 * lds];
        for (int i = 0; i < 64 * dp; i++) {
            int r = i / dp;
            int c = i % dp;
            float x = q0 + r < nq && c < d ? q[(int) (((long) b * nq + q0 + r) * width + h * d + c)] : 0f;
            qs[r * lds + c] = toF16(x);
        }
        double[] ks = new double[32 * lds];
        double[] vs = new double[32 * lds];
        float[][] o = new float[64][dp];
        float[] m = new float[64];
        float[] l = new float[64];
        java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
        int last = causal ? Math.min(nk, q0 + 64) : nk;
        for (int k0 = 0; k0 < last; k0 += 32) {
            for (int i = 0; i < 32 * dp; i++) {
                int kk = i / dp;
                int c = i % dp;
                boolean in = k0 + kk < nk && c < d;
                int src = (int) (((long) b * nk + k0 + kk) * width + h * d + c);
                ks[kk * lds + c] = toF16(in ? k[src] : 0f);
                vs[kk * lds + c] = toF16(in ? v[src] : 0f);
            }
            for (int warp = 0; warp < 4; warp++) {
                float[] s = new float[16 * 36];
                for (int r = 0; r < 16; r++) {
                    for (int key = 0; key < 32; key++) {
                        double acc = 0;
                        for (int c = 0; c < dp; c++) {
                            acc += qs[(16 * warp + r) * lds + c] * ks[key * lds + c];
                        }
                        s[r * 36 + key] = (float) acc;
                    }
                }
                for (int row = 0; row < 16; row++) {
                    int qi = q0 + 16 * warp + row;
                    int g = 16 * warp + row;
                    // lanes 2·row and 2·row + 1: keys 16·half .. + 16 each, maxima and sums exchanged
                    float[] sv = new float[32];
                    float mx = Float.NEGATIVE_INFINITY;
                    for (int e = 0; e < 32; e++) {
                        int key = k0 + e;
                        boolean ok = key < nk && (!causal || key <= qi);
                        sv[e] = ok ? s[row * 36 + e] * scale : Float.NEGATIVE_INFINITY;
                        mx = Math.max(mx, sv[e]);
                    }
                    float mNew = Math.max(m[g], mx);
                    boolean none = mNew == Float.NEGATIVE_INFINITY;
                    float corr = none ? 1f : (float) Math.exp(m[g] - mNew);
                    double[] p = new double[32];
                    float sum = 0;
                    for (int e = 0; e < 32; e++) {
                        float pe = none ? 0f : (float) Math.exp(sv[e] - mNew);
                        sum += pe;
                        p[e] = toF16(pe);
                    }
                    l[g] = l[g] * corr + sum;
                    m[g] = mNew;
                    for (int col = 0; col < dp; col++) {
                        double pv = 0;
                        for (int key = 0; key < 32; key++) {
                            pv += p[key] * vs[key * lds + col];
                        }
                        o[g][col] = o[g][col] * corr + (float) pv;
                    }
                }
            }
        }
        for (int g = 0; g < 64; g++) {
            int qi = q0 + g;
            if (qi < nq) {
                for (int col = 0; col < d; col++) {
                    out[(int) (((long) b * nq + qi) * width + h * d + col)] = o[g][col] * (1 / l[g]);
                }
            }
        }
    }

    @Test
    void attentionOnTheTensorCoresFollowsTheSoftmaxOverEveryKeyBlock() {
        Random rnd = new Random(7);
        // head dims of the models and odd ones (padded to 16), key counts not multiples of 32, causal
        for (int[] c : new int[][] {{2, 40, 100, 77, 0}, {1, 64, 70, 130, 0}, {3, 8, 65, 65, 1}, {1, 160, 20, 33, 0},
                {2, 24, 77, 77, 1}}) {
            int heads = c[0];
            int d = c[1];
            int nq = c[2];
            int nk = c[3];
            boolean causal = c[4] == 1;
            int batch = 2;
            int width = heads * d;
            float[] q = random(rnd, batch * nq * width);
            float[] k = random(rnd, batch * nk * width);
            float[] v = random(rnd, batch * nk * width);
            for (float[] a : new float[][] {q, k, v}) {
                for (int i = 0; i < a.length; i++) {
                    a[i] *= 0.5f;
                }
            }
            float scale = (float) (1 / Math.sqrt(d));
            float[] out = new float[batch * nq * width];
            java.util.Arrays.fill(out, Float.NaN);
            for (int b = 0; b < batch; b++) {
                for (int h = 0; h < heads; h++) {
                    for (int bx = 0; bx < (nq + 63) / 64; bx++) {
                        attentionBlock(q, k, v, out, nq, nk, heads, d, scale, causal, bx, h, b);
                    }
                }
            }
            // the CPU backend's attention (checked against float64 in core) as the reference
            float[] want;
            try (dev.jdiffusion.core.cpu.CpuBackend cpu = new dev.jdiffusion.core.cpu.CpuBackend(1)) {
                want = cpu.attention(dev.jdiffusion.core.tensor.Tensor.of(q, batch, nq, width),
                        dev.jdiffusion.core.tensor.Tensor.of(k, batch, nk, width),
                        dev.jdiffusion.core.tensor.Tensor.of(v, batch, nk, width), heads, causal).toFloatArray();
            }
            double worst = 0;
            for (int i = 0; i < out.length; i++) {
                assertTrue(!Float.isNaN(out[i]), "element " + i + " not written");
                worst = Math.max(worst, Math.abs(out[i] - want[i]));
            }
            // F16 operands and probabilities: a few units of 2⁻¹¹ on outputs of order 1
            assertTrue(worst <= 8 * Math.pow(2, -11), "attention " + java.util.Arrays.toString(c) + ": max error " + worst);
        }
    }
}
