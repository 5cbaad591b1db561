package dev.jdiffusion.core.cpu;

import static dev.jdiffusion.core.cpu.Gemm.L;
import static dev.jdiffusion.core.cpu.Gemm.S;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Multi-head attention in the manner of FlashAttention: for each block of {@link #BQ} queries the
 * keys are visited in blocks of {@link #BK}, scores of one block at a time, with an online softmax
 * (running row maximum and sum, earlier partial outputs rescaled). Memory is O(BQ·BK) per task,
 * never O(Nq·Nk).
 *
 * <p>Per (batch, head), Kᵀ and V are packed once into the {@link Gemm} micro-kernel's B layout;
 * both products run on an 8 × 3-vector register tiling, with the A operand read
 * row-major (queries, then probabilities). Tasks are (batch, head, query block): each output
 * element is computed by one task in a fixed order, independent of the thread count.
 */
final class Attention {
    static final int MR = 8;
    /** Columns of the attention micro-tile: 3 vectors on 512-bit machines, 2 otherwise. */
    static final int NR = Gemm.WIDE ? 3 * L : 2 * L;
    static final int BQ = 64;
    static final int BK = 4 * NR;

    private static final ThreadLocal<float[][]> SCRATCH = new ThreadLocal<>();

    private Attention() {
    }

    /**
     * q {@code [B, Nq, H·D]} at q[qOff..], k and v {@code [B, Nk, H·D]}, out {@code [B, Nq, H·D]} (zeroed or not, overwritten).
     */
    static void run(WorkerPool pool, int batch, int heads, int headDim, int nq, int nk,
                    float[] q, int qOff, float[] k, int kOff, float[] v, int vOff, float[] out, boolean causal) {
        int c = heads * headDim;
        int nkPad = Gemm.roundUp(nk, BK);
        int dSlivers = Gemm.ceilDiv(headDim, NR);
        int ktSize = nkPad * headDim;          // (nkPad / NR) slivers of headDim × NR
        int vSize = dSlivers * nkPad * NR;     // dSlivers slivers of nkPad × NR
        int bh = batch * heads;
        float[] kt = new float[bh * ktSize];
        float[] vp = new float[bh * vSize];
        pool.parallelFor(bh, t -> {
            int b = t / heads;
            int h = t % heads;
            int ktBase = t * ktSize;
            for (int j = 0; j < nk; j++) {
                int src = kOff + (b * nk + j) * c + h * headDim;
                int sl = j / NR;
                int col = j % NR;
                int dst = ktBase + sl * headDim * NR + col;
                for (int d = 0; d < headDim; d++) {
                    kt[dst + d * NR] = k[src + d];
                }
            }
            int vBase = t * vSize;
            for (int j = 0; j < nk; j++) {
                int src = vOff + (b * nk + j) * c + h * headDim;
                for (int s = 0; s < dSlivers; s++) {
                    int cols = Math.min(NR, headDim - s * NR);
                    System.arraycopy(v, src + s * NR, vp, vBase + s * nkPad * NR + j * NR, cols);
                }
            }
        });
        float scale = (float) (1.0 / Math.sqrt(headDim));
        int qBlocks = Gemm.ceilDiv(nq, BQ);
        pool.parallelFor(bh * qBlocks, t -> {
            int b = t / (heads * qBlocks);
            int h = (t / qBlocks) % heads;
            int i0 = (t % qBlocks) * BQ;
            block(b, h, i0, Math.min(BQ, nq - i0), heads, headDim, nq, nk, nkPad, dSlivers, q, qOff,
                    kt, (b * heads + h) * ktSize, vp, (b * heads + h) * vSize, out, causal, scale);
        });
    }

    private static void block(int b, int h, int i0, int rows, int heads, int headDim, int nq, int nk, int nkPad,
                              int dSlivers, float[] q, int qOff, float[] kt, int ktBase, float[] vp, int vBase,
                              float[] out, boolean causal, float scale) {
        int c = heads * headDim;
        int ldo = dSlivers * NR;
        float[][] scratch = scratch(headDim, ldo);
        float[] qb = scratch[0];
        float[] sp = scratch[1];
        float[] o = scratch[2];
        float[] m = scratch[3];
        float[] l = scratch[4];
        Arrays.fill(qb, 0f);
        for (int r = 0; r < rows; r++) {
            int src = qOff + (b * nq + i0 + r) * c + h * headDim;
            for (int d = 0; d < headDim; d++) {
                qb[r * headDim + d] = q[src + d] * scale;
            }
        }
        Arrays.fill(o, 0, BQ * ldo, 0f);
        Arrays.fill(m, Float.NEGATIVE_INFINITY);
        Arrays.fill(l, 0f);
        int panels = Gemm.ceilDiv(rows, MR);
        int keyEnd = causal ? Math.min(nk, i0 + rows) : nk;
        for (int j0 = 0; j0 < keyEnd; j0 += BK) {
            int bk = Math.min(BK, keyEnd - j0);
            int bkSlivers = Gemm.ceilDiv(bk, NR);
            // S = (scale·Q) Kᵀ for this key block
            Arrays.fill(sp, 0, BQ * BK, 0f);
            for (int s = 0; s < bkSlivers; s++) {
                int bo = ktBase + ((j0 / NR) + s) * headDim * NR;
                for (int p = 0; p < panels; p++) {
                    kernelRows(headDim, qb, p * MR * headDim, headDim, kt, bo, sp, p * MR * BK + s * NR, BK);
                }
            }
            // online softmax: P = exp(S - m_new), rescale earlier output and sums
            int bkRound = bkSlivers * NR;
            for (int r = 0; r < rows; r++) {
                int valid = causal ? Math.min(bk, i0 + r + 1 - j0) : bk;
                int so = r * BK;
                if (valid <= 0) {
                    Arrays.fill(sp, so, so + bkRound, 0f);
                    continue;
                }
                float rowMax = max(sp, so, valid);
                float mOld = m[r];
                float mNew = Math.max(mOld, rowMax);
                float corr = VecMath.exp(mOld - mNew);
                float sum = expShifted(sp, so, valid, mNew);
                Arrays.fill(sp, so + valid, so + bkRound, 0f);
                l[r] = l[r] * corr + sum;
                m[r] = mNew;
                if (corr != 1f) {
                    scaleRow(o, r * ldo, ldo, corr);
                }
            }
            // O += P V
            for (int s = 0; s < dSlivers; s++) {
                int bo = vBase + s * nkPad * NR + j0 * NR;
                for (int p = 0; p < panels; p++) {
                    kernelRows(bkRound, sp, p * MR * BK, BK, vp, bo, o, p * MR * ldo + s * NR, ldo);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            float inv = 1f / l[r];
            int dst = (b * nq + i0 + r) * c + h * headDim;
            for (int d = 0; d < headDim; d++) {
                out[dst + d] = o[r * ldo + d] * inv;
            }
        }
    }

    private static float[][] scratch(int headDim, int ldo) {
        float[][] s = SCRATCH.get();
        if (s == null || s[0].length < BQ * headDim || s[2].length < BQ * ldo) {
            s = new float[][] {new float[BQ * headDim], new float[BQ * BK], new float[BQ * ldo],
                new float[BQ], new float[BQ]};
            SCRATCH.set(s);
        }
        return s;
    }

    private static float max(float[] a, int off, int n) {
        FloatVector acc = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (; i <= n - L; i += L) {
            acc = acc.max(FloatVector.fromArray(S, a, off + i));
        }
        if (i < n) {
            VectorMask<Float> mask = S.indexInRange(i, n);
            acc = acc.max(FloatVector.fromArray(S, a, off + i, mask).blend(Float.NEGATIVE_INFINITY, mask.not()));
        }
        return acc.reduceLanes(VectorOperators.MAX);
    }

    /** a[i] = exp(a[i] - shift) for i < n; returns the sum, accumulated lane-wise in a fixed order. */
    private static float expShifted(float[] a, int off, int n, float shift) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector e = VecMath.exp(FloatVector.fromArray(S, a, off + i).sub(shift));
            e.intoArray(a, off + i);
            acc = acc.add(e);
        }
        if (i < n) {
            VectorMask<Float> mask = S.indexInRange(i, n);
            FloatVector e = VecMath.exp(FloatVector.fromArray(S, a, off + i, mask).sub(shift)).blend(0f, mask.not());
            e.intoArray(a, off + i, mask);
            acc = acc.add(e);
        }
        return VecMath.sumLanes(acc);
    }

    private static void scaleRow(float[] a, int off, int n, float s) {
        for (int i = 0; i < n; i += L) {
            FloatVector.fromArray(S, a, off + i).mul(s).intoArray(a, off + i);
        }
    }

    /**
     * The GEMM micro-tile with A read row-major ({@code a[ao + r·lda + k]}, 8 rows) instead of packed:
     * {@code c[co + r·ldc + 0..NR) += Σ_k a(r, k) · b[bo + k·NR + 0..NR)}.
     */
    static void kernelRows(int kc, float[] a, int ao, int lda, float[] b, int bo, float[] c, int co, int ldc) {
        if (!Gemm.WIDE) {
            kernelRowsNarrow(kc, a, ao, lda, b, bo, c, co, ldc);
            return;
        }
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
        FloatVector c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
        FloatVector c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
        int a0 = ao, a1 = ao + lda, a2 = ao + 2 * lda, a3 = ao + 3 * lda;
        int a4 = ao + 4 * lda, a5 = ao + 5 * lda, a6 = ao + 6 * lda, a7 = ao + 7 * lda;
        for (int k = 0; k < kc; k++) {
            int bi = bo + k * (3 * L);
            FloatVector b0 = FloatVector.fromArray(S, b, bi);
            FloatVector b1 = FloatVector.fromArray(S, b, bi + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bi + 2 * L);
            FloatVector x = FloatVector.broadcast(S, a[a0 + k]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01); c02 = x.fma(b2, c02);
            x = FloatVector.broadcast(S, a[a1 + k]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11); c12 = x.fma(b2, c12);
            x = FloatVector.broadcast(S, a[a2 + k]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21); c22 = x.fma(b2, c22);
            x = FloatVector.broadcast(S, a[a3 + k]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31); c32 = x.fma(b2, c32);
            x = FloatVector.broadcast(S, a[a4 + k]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41); c42 = x.fma(b2, c42);
            x = FloatVector.broadcast(S, a[a5 + k]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51); c52 = x.fma(b2, c52);
            x = FloatVector.broadcast(S, a[a6 + k]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61); c62 = x.fma(b2, c62);
            x = FloatVector.broadcast(S, a[a7 + k]);
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


    /** Narrow-vector machines: NR = 2 vectors; same contract, rows processed one vector pair at a time. */
    private static void kernelRowsNarrow(int kc, float[] a, int ao, int lda, float[] b, int bo, float[] c, int co,
                                         int ldc) {
        for (int r = 0; r < MR; r++) {
            FloatVector c0 = FloatVector.zero(S);
            FloatVector c1 = c0;
            int ar = ao + r * lda;
            for (int k = 0; k < kc; k++) {
                int bi = bo + k * NR;
                FloatVector x = FloatVector.broadcast(S, a[ar + k]);
                c0 = x.fma(FloatVector.fromArray(S, b, bi), c0);
                c1 = x.fma(FloatVector.fromArray(S, b, bi + L), c1);
            }
            int o = co + r * ldc;
            FloatVector.fromArray(S, c, o).add(c0).intoArray(c, o);
            FloatVector.fromArray(S, c, o + L).add(c1).intoArray(c, o + L);
        }
    }
}
