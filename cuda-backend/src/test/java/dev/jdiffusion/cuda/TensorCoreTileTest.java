package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Test;

/**
 * A Java twin of the tensor-core product in {@code linalg.cu} ({@code tc_stage}, {@code gemm_tc_tile}
 * with the arguments {@code gemm_tc} and {@code conv2d_tc} give it): the same tiles, staging (which
 * element goes where, bounds, conversion to F16/BF16), warp and fragment offsets and epilogue, with
 * WMMA's 16×16×16 product written out. Run over whole grids, it must give the product of the
 * converted operands, so the index arithmetic is checked here; the kernels themselves run only on a
 * GPU ({@code CudaBackendTest}).
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
}
