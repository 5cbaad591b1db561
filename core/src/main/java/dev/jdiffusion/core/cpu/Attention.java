package dev.jdiffusion.core.cpu;

import static dev.jdiffusion.core.cpu.Gemm.L;
import static dev.jdiffusion.core.cpu.Gemm.S;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Multi-head attention in the manner of FlashAttention: for each block of {@link #BQ} queries the
 * keys are visited in blocks of {@link #BK}, scores of one block at a time, with an online softmax
 * (running maximum and sum per query, earlier partial outputs rescaled). Memory is O(BQ·BK) per task,
 * never O(Nq·Nk).
 *
 * <p>Everything is computed transposed, with the block's queries along the vector lanes: scores
 * {@code Sᵀ = K·Qᵀ} (keys × queries), probabilities {@code Pᵀ}, output {@code Oᵀ += Vᵀ·Pᵀ} (head
 * dimension × queries). The softmax's maxima, sums and rescaling are then lane-wise, with no
 * horizontal reductions, and the head dimension is the micro-tile's row count (8 divides 40, 64, 80
 * and 160), so no columns are padded. Per (batch, head), K and Vᵀ are packed once into 8-row panels;
 * both products run on one 8 × 2-vector micro-kernel. Tasks are (batch, head, query block): each
 * output element is computed by one task in a fixed order, independent of the thread count.
 */
final class Attention {
    /** Rows of the micro-tile: keys in {@code K·Qᵀ}, head dimensions in {@code Vᵀ·Pᵀ}. */
    static final int MR = 8;
    /**
     * Columns of the micro-tile, the queries of one task: 2 vectors (with 3, a key block's scores,
     * the scaled queries and the output, 51 KiB, outgrew L1 and 4096-token attention ran 3–5 % slower).
     */
    static final int NR = 2 * L;
    static final int BQ = NR;
    static final int BK = 24 * MR;
    /** NR zeros (never written): the kernel's input when it stores. */
    private static final float[] ZEROS = new float[NR];

    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final ThreadLocal<float[][]> SCRATCH = new ThreadLocal<>();

    private Attention() {
    }

    /**
     * q {@code [B, Nq, H·D]} at q[qOff..], k and v {@code [B, Nk, H·D]}, out {@code [B, Nq, H·D]} (zeroed or not, overwritten).
     */
    static void run(WorkerPool pool, int batch, int heads, int headDim, int nq, int nk,
                    float[] q, int qOff, float[] k, int kOff, float[] v, int vOff, float[] out, boolean causal) {
        int c = heads * headDim;
        int dPanels = Gemm.ceilDiv(headDim, MR);
        int kSize = Gemm.roundUp(nk, MR) * headDim;     // key panels of headDim × MR
        int vSize = dPanels * nk * MR;                  // head-dimension panels of nk × MR
        int bh = batch * heads;
        float[] kp = new float[bh * kSize];
        float[] vp = new float[bh * vSize];
        pool.parallelFor(bh, t -> {
            int b = t / heads;
            int h = t % heads;
            int kBase = t * kSize;
            for (int j = 0; j < nk; j++) {
                int src = kOff + (b * nk + j) * c + h * headDim;
                int dst = kBase + (j / MR) * headDim * MR + j % MR;
                for (int d = 0; d < headDim; d++) {
                    kp[dst + d * MR] = k[src + d];
                }
            }
            int vBase = t * vSize;
            for (int j = 0; j < nk; j++) {
                int src = vOff + (b * nk + j) * c + h * headDim;
                for (int p = 0; p < dPanels; p++) {
                    int rows = Math.min(MR, headDim - p * MR);
                    System.arraycopy(v, src + p * MR, vp, vBase + (p * nk + j) * MR, rows);
                }
            }
        });
        float scale = (float) (1.0 / Math.sqrt(headDim));
        int qBlocks = Gemm.ceilDiv(nq, BQ);
        pool.parallelFor(bh * qBlocks, t -> {
            int b = t / (heads * qBlocks);
            int h = (t / qBlocks) % heads;
            int i0 = (t % qBlocks) * BQ;
            block(b, h, i0, Math.min(BQ, nq - i0), heads, headDim, nq, nk, q, qOff,
                    kp, (b * heads + h) * kSize, vp, (b * heads + h) * vSize, out, causal, scale);
        });
    }

    private static void block(int b, int h, int i0, int rows, int heads, int headDim, int nq, int nk, float[] q,
                              int qOff, float[] kp, int kBase, float[] vp, int vBase, float[] out, boolean causal,
                              float scale) {
        int c = heads * headDim;
        int dPanels = Gemm.ceilDiv(headDim, MR);
        float[][] scratch = scratch(headDim);
        float[] qt = scratch[0];   // scale·Qᵀ: headDim × NR
        float[] st = scratch[1];   // Sᵀ, then Pᵀ: BK × NR
        float[] ot = scratch[2];   // Oᵀ: dPanels·MR × NR
        float[] ml = scratch[3];   // running maximum (NR) and sum (NR) per query
        Arrays.fill(qt, 0, headDim * NR, 0f);
        for (int r = 0; r < rows; r++) {
            int src = qOff + (b * nq + i0 + r) * c + h * headDim;
            for (int d = 0; d < headDim; d++) {
                qt[d * NR + r] = q[src + d] * scale;
            }
        }
        Arrays.fill(ot, 0, dPanels * MR * NR, 0f);
        Arrays.fill(ml, 0, NR, Float.NEGATIVE_INFINITY);
        Arrays.fill(ml, NR, 2 * NR, 0f);
        int keyEnd = causal ? Math.min(nk, i0 + rows) : nk;
        for (int j0 = 0; j0 < keyEnd; j0 += BK) {
            int bk = Math.min(BK, keyEnd - j0);
            // Sᵀ = K (scale·Qᵀ) for this key block
            for (int p = 0; p < Gemm.ceilDiv(bk, MR); p++) {
                kernel(headDim, kp, kBase + (j0 / MR + p) * headDim * MR, qt, 0, ZEROS, 0, 0, st, p * MR * NR, NR);
            }
            softmaxBlock(st, bk, j0, i0, causal, ml, ot, dPanels * MR, scratch[4]);
            // Oᵀ += Vᵀ Pᵀ
            for (int p = 0; p < dPanels; p++) {
                kernel(bk, vp, vBase + (p * nk + j0) * MR, st, 0, ot, p * MR * NR, NR, ot, p * MR * NR, NR);
            }
        }
        for (int r = 0; r < rows; r++) {
            float inv = 1f / ml[NR + r];
            int dst = (b * nq + i0 + r) * c + h * headDim;
            for (int d = 0; d < headDim; d++) {
                out[dst + d] = ot[d * NR + r] * inv;
            }
        }
    }

    /**
     * The online softmax over one key block: new maxima over the block's {@code bk} rows of Sᵀ,
     * {@code Pᵀ = exp(Sᵀ − m)} in place (0 where a causal mask hides the key), sums and earlier output
     * rows ({@code otRows} of Oᵀ) rescaled by {@code exp(m_old − m)}; {@code work} is room for 2·NR floats.
     * The vector loops are methods of their own that take and return arrays, never vectors: where C2
     * leaves a helper that takes vectors un-inlined, every vector passed is boxed, several times slower
     * (its profile decides: with a UNet's mix of attention shapes it left the exp un-inlined when the
     * loops were part of this method).
     */
    private static void softmaxBlock(float[] st, int bk, int j0, int i0, boolean causal, float[] ml, float[] ot,
                                     int otRows, float[] work) {
        blockMaxima(st, bk, j0, i0, causal, ml, work);
        for (int vi = 0; vi < NR; vi += L) {
            expRows(st, bk, vi, work);
            FloatVector mNew = FloatVector.fromArray(S, work, vi);
            // exp(m_old − m) where the maximum moved (after the first blocks, in few lanes), 1 elsewhere
            long moved = FloatVector.fromArray(S, ml, vi).compare(VectorOperators.NE, mNew).toLong();
            for (int l = 0; l < L; l++) {
                work[vi + l] = (moved & (1L << l)) == 0 ? 1f : VecMath.exp(ml[vi + l] - work[vi + l]);
            }
            mNew.intoArray(ml, vi);
            FloatVector c = FloatVector.fromArray(S, work, vi);
            FloatVector.fromArray(S, ml, NR + vi).fma(c, FloatVector.fromArray(S, work, NR + vi)).intoArray(ml, NR + vi);
            if (moved != 0) {
                for (int d = 0; d < otRows; d++) {
                    FloatVector.fromArray(S, ot, d * NR + vi).mul(c).intoArray(ot, d * NR + vi);
                }
            }
        }
    }

    /**
     * {@code max[0..NR) = max(ml[0..NR), maxima of the block's rows of Sᵀ)}, the keys a causal mask hides
     * from a query set to −∞ in place. Both halves of a row at once, two rows per step: a max in Java's
     * semantics is a chain of several instructions (~10 cycles), here four independent chains.
     */
    private static void blockMaxima(float[] st, int bk, int j0, int i0, boolean causal, float[] ml, float[] max) {
        FloatVector negInf = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        IntVector lane = IntVector.zero(I).addIndex(1);
        IntVector query0 = lane.add(i0);
        IntVector query1 = lane.add(i0 + L);
        FloatVector m0 = negInf;
        FloatVector m1 = negInf;
        FloatVector m2 = negInf;
        FloatVector m3 = negInf;
        for (int r = 0; r < bk; r += 2) {
            // an odd bk: the last row counts twice, which does not change a maximum
            int r1 = Math.min(r + 1, bk - 1);
            FloatVector s0 = FloatVector.fromArray(S, st, r * NR);
            FloatVector s1 = FloatVector.fromArray(S, st, r * NR + L);
            FloatVector s2 = FloatVector.fromArray(S, st, r1 * NR);
            FloatVector s3 = FloatVector.fromArray(S, st, r1 * NR + L);
            if (causal) {
                // key j is hidden from query i when j > i
                s0 = s0.blend(negInf, query0.compare(VectorOperators.LT, j0 + r).cast(S));
                s1 = s1.blend(negInf, query1.compare(VectorOperators.LT, j0 + r).cast(S));
                s2 = s2.blend(negInf, query0.compare(VectorOperators.LT, j0 + r1).cast(S));
                s3 = s3.blend(negInf, query1.compare(VectorOperators.LT, j0 + r1).cast(S));
                s0.intoArray(st, r * NR);
                s1.intoArray(st, r * NR + L);
                s2.intoArray(st, r1 * NR);
                s3.intoArray(st, r1 * NR + L);
            }
            m0 = m0.max(s0);
            m1 = m1.max(s1);
            m2 = m2.max(s2);
            m3 = m3.max(s3);
        }
        FloatVector.fromArray(S, ml, 0).max(m0.max(m2)).intoArray(max, 0);
        FloatVector.fromArray(S, ml, L).max(m1.max(m3)).intoArray(max, L);
    }

    /**
     * Column vector {@code vi} of the block's rows of Sᵀ becomes {@code exp(Sᵀ − m)}, m at
     * {@code work[vi..]}; their sum goes to {@code work[NR + vi..]}.
     */
    private static void expRows(float[] st, int bk, int vi, float[] work) {
        FloatVector m = FloatVector.fromArray(S, work, vi);
        FloatVector sum = FloatVector.zero(S);
        for (int r = 0; r < bk; r++) {
            FloatVector p = VecMath.expNonPositive(FloatVector.fromArray(S, st, r * NR + vi).sub(m));
            p.intoArray(st, r * NR + vi);
            sum = sum.add(p);
        }
        sum.intoArray(work, NR + vi);
    }

    private static float[][] scratch(int headDim) {
        float[][] s = SCRATCH.get();
        int otSize = Gemm.roundUp(headDim, MR) * NR;
        if (s == null || s[0].length < headDim * NR || s[2].length < otSize) {
            s = new float[][] {new float[headDim * NR], new float[BK * NR], new float[otSize], new float[2 * NR],
                    new float[2 * NR]};
            SCRATCH.set(s);
        }
        return s;
    }

    /**
     * The 8 × 2-vector micro-tile, with {@link Gemm#kernel}'s contract: {@code c[co + r·ldc + j] =
     * ci[cio + r·ldi + j] + Σ_k a[ao + 8k + r] · b[bo + k·NR + j]} for j below NR; {@code ci} is C itself
     * (added to) or {@link #ZEROS} with {@code ldi} 0 (stored).
     */
    static void kernel(int kc, float[] a, int ao, float[] b, int bo, float[] ci, int cio, int ldi, float[] c, int co, int ldc) {
        if (!Gemm.WIDE) {
            kernelNarrow(kc, a, ao, b, bo, ci, cio, ldi, c, co, ldc);
            return;
        }
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00;
        FloatVector c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        FloatVector c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        FloatVector c60 = c00, c61 = c00, c70 = c00, c71 = c00;
        int bi = bo;
        int end = ao + kc * MR;
        for (int ai = ao; ai < end; ai += MR, bi += NR) {
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
            x = FloatVector.broadcast(S, a[ai + 6]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, a[ai + 7]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71);
        }
        // written out: C2 stops inlining a helper into a method this large (NodeCountInliningCutoff),
        // and at the calls it leaves the accumulators are boxed (the whole attention a third slower)
        c00 = c00.add(FloatVector.fromArray(S, ci, cio));
        c01 = c01.add(FloatVector.fromArray(S, ci, cio + L));
        c10 = c10.add(FloatVector.fromArray(S, ci, cio + ldi));
        c11 = c11.add(FloatVector.fromArray(S, ci, cio + ldi + L));
        c20 = c20.add(FloatVector.fromArray(S, ci, cio + 2 * ldi));
        c21 = c21.add(FloatVector.fromArray(S, ci, cio + 2 * ldi + L));
        c30 = c30.add(FloatVector.fromArray(S, ci, cio + 3 * ldi));
        c31 = c31.add(FloatVector.fromArray(S, ci, cio + 3 * ldi + L));
        c40 = c40.add(FloatVector.fromArray(S, ci, cio + 4 * ldi));
        c41 = c41.add(FloatVector.fromArray(S, ci, cio + 4 * ldi + L));
        c50 = c50.add(FloatVector.fromArray(S, ci, cio + 5 * ldi));
        c51 = c51.add(FloatVector.fromArray(S, ci, cio + 5 * ldi + L));
        c60 = c60.add(FloatVector.fromArray(S, ci, cio + 6 * ldi));
        c61 = c61.add(FloatVector.fromArray(S, ci, cio + 6 * ldi + L));
        c70 = c70.add(FloatVector.fromArray(S, ci, cio + 7 * ldi));
        c71 = c71.add(FloatVector.fromArray(S, ci, cio + 7 * ldi + L));
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
    }

    /** Narrow-vector machines: the same contract, one row at a time. */
    private static void kernelNarrow(int kc, float[] a, int ao, float[] b, int bo, float[] ci, int cio, int ldi,
                                     float[] c, int co, int ldc) {
        for (int r = 0; r < MR; r++) {
            FloatVector c0 = FloatVector.zero(S);
            FloatVector c1 = c0;
            for (int k = 0; k < kc; k++) {
                int bi = bo + k * NR;
                FloatVector x = FloatVector.broadcast(S, a[ao + k * MR + r]);
                c0 = x.fma(FloatVector.fromArray(S, b, bi), c0);
                c1 = x.fma(FloatVector.fromArray(S, b, bi + L), c1);
            }
            int i = cio + r * ldi;
            int o = co + r * ldc;
            c0.add(FloatVector.fromArray(S, ci, i)).intoArray(c, o);
            c1.add(FloatVector.fromArray(S, ci, i + L)).intoArray(c, o + L);
        }
    }
}
