package dev.jdiffusion.core.cpu;

import dev.jdiffusion.core.tensor.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Single-precision matrix multiplication {@code C += A·B} in the style of BLIS / GotoBLAS: the
 * operands are packed block by block into contiguous panels (which is where transposition, dtype
 * conversion and im2col happen, see {@link PackA} and {@link PackB}), and a register-blocked
 * micro-kernel multiplies an {@code MR × kc} panel of A by a {@code kc × NR} sliver of B.
 *
 * <p>With 512-bit vectors (32 registers) the micro-kernel is 8 rows × 3 vectors (24 accumulators);
 * with narrower vectors it is 6 × 2. Work is split into tasks over (batch, M block, N block); every
 * element of C is computed by one task with a fixed order of additions (K in blocks of {@link #KC},
 * in order), so results are identical for any number of threads.
 */
public final class Gemm {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    static final boolean WIDE = L >= 16;
    /** Rows of the micro-tile (broadcast from the packed A panel). */
    public static final int MR = WIDE ? 8 : 6;
    /** Columns of the micro-tile (vector loads from the packed B sliver). */
    public static final int NR = WIDE ? 3 * L : 2 * L;
    /** Depth of one packed block. Fixed: it determines the order of additions. */
    public static final int KC = 384;
    static final int MC_MAX = 128 * MR;
    static final int NC_MAX = 16 * NR;

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    private Gemm() {
    }

    /** Packs {@code A[i0..i0+mc, k0..k0+kc]} of one batch entry into MR-row panels: element (i, k) of panel p at {@code p·kc·MR + k·MR + r}. */
    public interface PackA {
        void pack(int batch, int i0, int mc, int k0, int kc, float[] dst);
    }

    /** Packs {@code B[k0..k0+kc, j0..j0+nc]} of one batch entry into NR-column slivers: element (k, c) of sliver q at {@code q·kc·NR + k·NR + c}. */
    public interface PackB {
        void pack(int batch, int k0, int kc, int j0, int nc, float[] dst);
    }

    /**
     * {@code C[b] += A[b]·B[b]} for {@code b < batch}; C is row-major float32 with leading dimension
     * {@code ldc}, batch entry b starting at {@code cOff + b·cBatchStride}.
     */
    public static void multiply(WorkerPool pool, int batch, int m, int n, int k, PackA a, PackB b,
                                float[] c, long cOff, long cBatchStride, int ldc) {
        if (batch == 0 || m == 0 || n == 0 || k == 0) {
            return;
        }
        int mc = Math.min(MC_MAX, roundUp(m, MR));
        int nc = Math.min(NC_MAX, roundUp(n, NR));
        // Enough tasks to keep every thread busy. Splitting M repacks B once more per block and
        // splitting N repacks A, so split the side whose other operand is the smaller one.
        // Block sizes never change a result.
        while ((long) batch * ceilDiv(m, mc) * ceilDiv(n, nc) < 4L * pool.threads()) {
            boolean canM = mc > 4 * MR;
            boolean canN = nc > 4 * NR;
            if (canM && (m >= n || !canN)) {
                mc = roundUp(mc / 2, MR);
            } else if (canN) {
                nc = roundUp(nc / 2, NR);
            } else {
                break;
            }
        }
        final int fmc = mc;
        final int fnc = nc;
        final int mb = ceilDiv(m, mc);
        final int nb = ceilDiv(n, nc);
        pool.parallelFor(batch * mb * nb, task -> {
            int bi = task / (mb * nb);
            int rest = task % (mb * nb);
            int i0 = (rest / nb) * fmc;
            int j0 = (rest % nb) * fnc;
            block(bi, i0, Math.min(fmc, m - i0), j0, Math.min(fnc, n - j0), k, a, b, c,
                    cOff + bi * cBatchStride, ldc);
        });
    }

    private static void block(int batch, int i0, int mc, int j0, int nc, int k, PackA a, PackB b,
                              float[] c, long cBase, int ldc) {
        Buffers buf = BUFFERS.get();
        int panels = ceilDiv(mc, MR);
        int slivers = ceilDiv(nc, NR);
        float[] ap = buf.a(panels * MR * KC);
        float[] bp = buf.b(slivers * NR * KC);
        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = Math.min(KC, k - k0);
            a.pack(batch, i0, mc, k0, kc, ap);
            b.pack(batch, k0, kc, j0, nc, bp);
            for (int p = 0; p < panels; p++) {
                int rows = Math.min(MR, mc - p * MR);
                int ao = p * kc * MR;
                for (int q = 0; q < slivers; q++) {
                    int cols = Math.min(NR, nc - q * NR);
                    int bo = q * kc * NR;
                    long co = cBase + (long) (i0 + p * MR) * ldc + j0 + q * NR;
                    if (rows == MR && cols == NR) {
                        kernel(kc, ap, ao, bp, bo, c, (int) co, ldc);
                    } else {
                        float[] tile = buf.tile();
                        java.util.Arrays.fill(tile, 0f);
                        kernel(kc, ap, ao, bp, bo, tile, 0, NR);
                        for (int r = 0; r < rows; r++) {
                            int crow = (int) (co + (long) r * ldc);
                            for (int j = 0; j < cols; j++) {
                                c[crow + j] += tile[r * NR + j];
                            }
                        }
                    }
                }
            }
        }
    }

    static void kernel(int kc, float[] a, int ao, float[] b, int bo, float[] c, int co, int ldc) {
        if (WIDE) {
            kernel8x3(kc, a, ao, b, bo, c, co, ldc);
        } else {
            kernel6x2(kc, a, ao, b, bo, c, co, ldc);
        }
    }

    private static void kernel8x3(int kc, float[] a, int ao, float[] b, int bo, float[] c, int co, int ldc) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
        FloatVector c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
        for (int k = 0; k < kc; k++) {
            int bi = bo + k * (3 * L);
            int ai = ao + k * 8;
            FloatVector b0 = FloatVector.fromArray(S, b, bi);
            FloatVector b1 = FloatVector.fromArray(S, b, bi + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bi + 2 * L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31); c32 = x.fma(b2, c32);
            x = FloatVector.broadcast(S, a[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41); c42 = x.fma(b2, c42);
            x = FloatVector.broadcast(S, a[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51); c52 = x.fma(b2, c52);
            x = FloatVector.broadcast(S, a[ai + 6]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61); c62 = x.fma(b2, c62);
            x = FloatVector.broadcast(S, a[ai + 7]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71); c72 = x.fma(b2, c72);
        }
        FloatVector.fromArray(S, c, co).add(c00).intoArray(c, co);
        FloatVector.fromArray(S, c, co + L).add(c01).intoArray(c, co + L);
        FloatVector.fromArray(S, c, co + 2 * L).add(c02).intoArray(c, co + 2 * L);
        FloatVector.fromArray(S, c, co + ldc).add(c10).intoArray(c, co + ldc);
        FloatVector.fromArray(S, c, co + ldc + L).add(c11).intoArray(c, co + ldc + L);
        FloatVector.fromArray(S, c, co + ldc + 2 * L).add(c12).intoArray(c, co + ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 2 * ldc).add(c20).intoArray(c, co + 2 * ldc);
        FloatVector.fromArray(S, c, co + 2 * ldc + L).add(c21).intoArray(c, co + 2 * ldc + L);
        FloatVector.fromArray(S, c, co + 2 * ldc + 2 * L).add(c22).intoArray(c, co + 2 * ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 3 * ldc).add(c30).intoArray(c, co + 3 * ldc);
        FloatVector.fromArray(S, c, co + 3 * ldc + L).add(c31).intoArray(c, co + 3 * ldc + L);
        FloatVector.fromArray(S, c, co + 3 * ldc + 2 * L).add(c32).intoArray(c, co + 3 * ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 4 * ldc).add(c40).intoArray(c, co + 4 * ldc);
        FloatVector.fromArray(S, c, co + 4 * ldc + L).add(c41).intoArray(c, co + 4 * ldc + L);
        FloatVector.fromArray(S, c, co + 4 * ldc + 2 * L).add(c42).intoArray(c, co + 4 * ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 5 * ldc).add(c50).intoArray(c, co + 5 * ldc);
        FloatVector.fromArray(S, c, co + 5 * ldc + L).add(c51).intoArray(c, co + 5 * ldc + L);
        FloatVector.fromArray(S, c, co + 5 * ldc + 2 * L).add(c52).intoArray(c, co + 5 * ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 6 * ldc).add(c60).intoArray(c, co + 6 * ldc);
        FloatVector.fromArray(S, c, co + 6 * ldc + L).add(c61).intoArray(c, co + 6 * ldc + L);
        FloatVector.fromArray(S, c, co + 6 * ldc + 2 * L).add(c62).intoArray(c, co + 6 * ldc + 2 * L);
        FloatVector.fromArray(S, c, co + 7 * ldc).add(c70).intoArray(c, co + 7 * ldc);
        FloatVector.fromArray(S, c, co + 7 * ldc + L).add(c71).intoArray(c, co + 7 * ldc + L);
        FloatVector.fromArray(S, c, co + 7 * ldc + 2 * L).add(c72).intoArray(c, co + 7 * ldc + 2 * L);
    }


    private static void kernel6x2(int kc, float[] a, int ao, float[] b, int bo, float[] c, int co, int ldc) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int k = 0; k < kc; k++) {
            int bi = bo + k * (2 * L);
            int ai = ao + k * 6;
            FloatVector b0 = FloatVector.fromArray(S, b, bi);
            FloatVector b1 = FloatVector.fromArray(S, b, bi + L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, a[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, a[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
        }
        FloatVector.fromArray(S, c, co).add(c00).intoArray(c, co);
        FloatVector.fromArray(S, c, co + L).add(c01).intoArray(c, co + L);
        FloatVector.fromArray(S, c, co + ldc).add(c10).intoArray(c, co + ldc);
        FloatVector.fromArray(S, c, co + ldc + L).add(c11).intoArray(c, co + ldc + L);
        FloatVector.fromArray(S, c, co + 2 * ldc).add(c20).intoArray(c, co + 2 * ldc);
        FloatVector.fromArray(S, c, co + 2 * ldc + L).add(c21).intoArray(c, co + 2 * ldc + L);
        FloatVector.fromArray(S, c, co + 3 * ldc).add(c30).intoArray(c, co + 3 * ldc);
        FloatVector.fromArray(S, c, co + 3 * ldc + L).add(c31).intoArray(c, co + 3 * ldc + L);
        FloatVector.fromArray(S, c, co + 4 * ldc).add(c40).intoArray(c, co + 4 * ldc);
        FloatVector.fromArray(S, c, co + 4 * ldc + L).add(c41).intoArray(c, co + 4 * ldc + L);
        FloatVector.fromArray(S, c, co + 5 * ldc).add(c50).intoArray(c, co + 5 * ldc);
        FloatVector.fromArray(S, c, co + 5 * ldc + L).add(c51).intoArray(c, co + 5 * ldc + L);
    }


    // ---- packers for matrices stored in tensors ----------------------------------------------------

    /**
     * A (batched) row-major matrix inside a tensor: element (row, col) of batch entry b is flat
     * element {@code b·batchStride + row·ld + col}. {@code transposed} swaps the roles: the logical
     * element (i, k) is stored at (k, i).
     */
    public record Matrix(Tensor tensor, long batchStride, int ld, boolean transposed) {
        /** Reads {@code n} consecutive stored elements starting at flat index {@code e} as float32. */
        void read(long e, float[] dst, int off, int n) {
            tensor.copyTo(e, dst, off, n);
        }
    }

    /** Packs A from a matrix (A is logically M×K; stored M×K, or K×M when transposed). */
    public static PackA packA(Matrix m) {
        return (batch, i0, mc, k0, kc, dst) -> {
            long base = batch * m.batchStride();
            int panels = ceilDiv(mc, MR);
            if (!m.transposed()) {
                float[] row = BUFFERS.get().row(MR * kc);
                for (int p = 0; p < panels; p++) {
                    int pb = p * kc * MR;
                    int rows = Math.min(MR, mc - p * MR);
                    float[] src;
                    int srcOff;
                    int ld;
                    if (m.tensor().isFloatArray() && rows == MR) {
                        src = m.tensor().floatArray();
                        srcOff = (int) (m.tensor().offset() + base + (long) (i0 + p * MR) * m.ld() + k0);
                        ld = m.ld();
                    } else {
                        for (int r = 0; r < MR; r++) {
                            if (r < rows) {
                                m.read(base + (long) (i0 + p * MR + r) * m.ld() + k0, row, r * kc, kc);
                            } else {
                                java.util.Arrays.fill(row, r * kc, (r + 1) * kc, 0f);
                            }
                        }
                        src = row;
                        srcOff = 0;
                        ld = kc;
                    }
                    transposeToPanel(src, srcOff, ld, kc, dst, pb);
                }
            } else {
                for (int p = 0; p < panels; p++) {
                    int pb = p * kc * MR;
                    int rows = Math.min(MR, mc - p * MR);
                    for (int k = 0; k < kc; k++) {
                        m.read(base + (long) (k0 + k) * m.ld() + i0 + p * MR, dst, pb + k * MR, rows);
                        for (int r = rows; r < MR; r++) {
                            dst[pb + k * MR + r] = 0f;
                        }
                    }
                }
            }
        };
    }

    /** Lane j of a vector goes to {@code j·MR}: one row's k-run scattered into an MR-interleaved panel. */
    private static final int[] PANEL_SCATTER = java.util.stream.IntStream.range(0, L).map(j -> j * MR).toArray();

    /** Writes MR rows {@code src[off + r·ld + k]} (k < kc) as the panel {@code dst[pb + k·MR + r]}. */
    private static void transposeToPanel(float[] src, int off, int ld, int kc, float[] dst, int pb) {
        int k = 0;
        for (; k <= kc - L; k += L) {
            for (int r = 0; r < MR; r++) {
                FloatVector.fromArray(S, src, off + r * ld + k).intoArray(dst, pb + k * MR + r, PANEL_SCATTER, 0);
            }
        }
        for (; k < kc; k++) {
            for (int r = 0; r < MR; r++) {
                dst[pb + k * MR + r] = src[off + r * ld + k];
            }
        }
    }

    /** Packs B from a matrix (B is logically K×N; stored K×N, or N×K when transposed, as a linear layer's weight). */
    public static PackB packB(Matrix m) {
        return (batch, k0, kc, j0, nc, dst) -> {
            long base = batch * m.batchStride();
            int slivers = ceilDiv(nc, NR);
            if (!m.transposed()) {
                for (int q = 0; q < slivers; q++) {
                    int qb = q * kc * NR;
                    int cols = Math.min(NR, nc - q * NR);
                    for (int k = 0; k < kc; k++) {
                        m.read(base + (long) (k0 + k) * m.ld() + j0 + q * NR, dst, qb + k * NR, cols);
                        for (int j = cols; j < NR; j++) {
                            dst[qb + k * NR + j] = 0f;
                        }
                    }
                }
            } else {
                float[] row = BUFFERS.get().row(kc);
                for (int q = 0; q < slivers; q++) {
                    int qb = q * kc * NR;
                    for (int j = 0; j < NR; j++) {
                        int col = q * NR + j;
                        if (col < nc) {
                            m.read(base + (long) (j0 + col) * m.ld() + k0, row, 0, kc);
                            for (int k = 0; k < kc; k++) {
                                dst[qb + k * NR + j] = row[k];
                            }
                        } else {
                            for (int k = 0; k < kc; k++) {
                                dst[qb + k * NR + j] = 0f;
                            }
                        }
                    }
                }
            }
        };
    }

    /**
     * Packs the im2col matrix of a convolution as B without building it: row {@code k = (ci, ky, kx)},
     * column {@code j = (oy, ox)}, value {@code x[n, ci, oy·s + ky − pad, ox·s + kx − pad]} or 0 outside.
     * Runs of columns on one output row are copied as contiguous spans (stride 1).
     */
    public static PackB packIm2col(float[] x, long xOff, int cin, int h, int w, int kh, int kw, int stride, int pad,
                                   int ho, int wo) {
        long imageSize = (long) cin * h * w;
        int kArea = kh * kw;
        return (batch, k0, kc, j0, nc, dst) -> {
            long imgBase = xOff + batch * imageSize;
            int slivers = ceilDiv(nc, NR);
            for (int q = 0; q < slivers; q++) {
                int qb = q * kc * NR;
                int colStart = j0 + q * NR;
                int cols = Math.min(NR, nc - q * NR);
                for (int k = 0; k < kc; k++) {
                    int kk = k0 + k;
                    int ci = kk / kArea;
                    int rem = kk - ci * kArea;
                    int ky = rem / kw;
                    int kx = rem - ky * kw;
                    long chanBase = imgBase + (long) ci * h * w;
                    int d = qb + k * NR;
                    int j = 0;
                    while (j < cols) {
                        int col = colStart + j;
                        int oy = col / wo;
                        int ox = col - oy * wo;
                        int run = Math.min(cols - j, wo - ox);
                        int iy = oy * stride + ky - pad;
                        if (iy < 0 || iy >= h) {
                            java.util.Arrays.fill(dst, d + j, d + j + run, 0f);
                        } else if (stride == 1) {
                            int ix0 = ox + kx - pad;
                            int lo = Math.max(0, -ix0);
                            int hi = Math.min(run, w - ix0);
                            if (hi <= lo) {
                                java.util.Arrays.fill(dst, d + j, d + j + run, 0f);
                            } else {
                                if (lo > 0) {
                                    java.util.Arrays.fill(dst, d + j, d + j + lo, 0f);
                                }
                                System.arraycopy(x, (int) (chanBase + (long) iy * w + ix0 + lo), dst, d + j + lo, hi - lo);
                                if (hi < run) {
                                    java.util.Arrays.fill(dst, d + j + hi, d + j + run, 0f);
                                }
                            }
                        } else {
                            int rowBase = (int) (chanBase + (long) iy * w);
                            for (int t = 0; t < run; t++) {
                                int ix = (ox + t) * stride + kx - pad;
                                dst[d + j + t] = (ix >= 0 && ix < w) ? x[rowBase + ix] : 0f;
                            }
                        }
                        j += run;
                    }
                    if (cols < NR) {
                        java.util.Arrays.fill(dst, d + cols, d + NR, 0f);
                    }
                }
            }
        };
    }

    static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    static int roundUp(int a, int b) {
        return ceilDiv(a, b) * b;
    }

    /** Per-thread packing buffers, grown on demand and reused. */
    private static final class Buffers {
        private float[] a = new float[0];
        private float[] b = new float[0];
        private float[] row = new float[0];
        private final float[] tile = new float[MR * NR];

        float[] a(int n) {
            if (a.length < n) {
                a = new float[n];
            }
            return a;
        }

        float[] b(int n) {
            if (b.length < n) {
                b = new float[n];
            }
            return b;
        }

        float[] row(int n) {
            if (row.length < n) {
                row = new float[n];
            }
            return row;
        }

        float[] tile() {
            return tile;
        }
    }
}
