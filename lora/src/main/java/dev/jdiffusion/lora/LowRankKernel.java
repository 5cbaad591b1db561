package dev.jdiffusion.lora;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * acc[j, :] += Σ_k up[j, k] · down[k, :] for a few rows j at a time: each vector of {@code down} is
 * loaded once and multiplied into eight (or four) rows' accumulators, so a rank-r update of a row block runs
 * at FMA speed rather than at the speed of its loads. The order of additions per element is fixed
 * (k ascending), whatever the thread that runs a block.
 */
final class LowRankKernel {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private LowRankKernel() {
    }

    /**
     * For rows j in [0, rows): acc[(accRow + j)·cols + c] += Σ_k up[(upRow + j)·rank + k] · down[k·cols + c].
     */
    static void add(float[] acc, int accRow, int rows, float[] up, int upRow, float[] down, int rank, int cols) {
        int j = 0;
        for (; j + 8 <= rows; j += 8) {
            eight(acc, (accRow + j) * cols, up, (upRow + j) * rank, down, rank, cols);
        }
        for (; j + 4 <= rows; j += 4) {
            four(acc, (accRow + j) * cols, up, (upRow + j) * rank, down, rank, cols);
        }
        for (; j < rows; j++) {
            one(acc, (accRow + j) * cols, up, (upRow + j) * rank, down, rank, cols);
        }
    }

    private static void eight(float[] acc, int a, float[] up, int u, float[] down, int rank, int cols) {
        int step = 3 * S.length();
        int c = 0;
        for (; c + step <= cols; c += step) {
            FloatVector a00 = FloatVector.fromArray(S, acc, a + c);
            FloatVector a01 = FloatVector.fromArray(S, acc, a + c + S.length());
            FloatVector a02 = FloatVector.fromArray(S, acc, a + c + 2 * S.length());
            FloatVector a10 = FloatVector.fromArray(S, acc, a + 1 * cols + c);
            FloatVector a11 = FloatVector.fromArray(S, acc, a + 1 * cols + c + S.length());
            FloatVector a12 = FloatVector.fromArray(S, acc, a + 1 * cols + c + 2 * S.length());
            FloatVector a20 = FloatVector.fromArray(S, acc, a + 2 * cols + c);
            FloatVector a21 = FloatVector.fromArray(S, acc, a + 2 * cols + c + S.length());
            FloatVector a22 = FloatVector.fromArray(S, acc, a + 2 * cols + c + 2 * S.length());
            FloatVector a30 = FloatVector.fromArray(S, acc, a + 3 * cols + c);
            FloatVector a31 = FloatVector.fromArray(S, acc, a + 3 * cols + c + S.length());
            FloatVector a32 = FloatVector.fromArray(S, acc, a + 3 * cols + c + 2 * S.length());
            FloatVector a40 = FloatVector.fromArray(S, acc, a + 4 * cols + c);
            FloatVector a41 = FloatVector.fromArray(S, acc, a + 4 * cols + c + S.length());
            FloatVector a42 = FloatVector.fromArray(S, acc, a + 4 * cols + c + 2 * S.length());
            FloatVector a50 = FloatVector.fromArray(S, acc, a + 5 * cols + c);
            FloatVector a51 = FloatVector.fromArray(S, acc, a + 5 * cols + c + S.length());
            FloatVector a52 = FloatVector.fromArray(S, acc, a + 5 * cols + c + 2 * S.length());
            FloatVector a60 = FloatVector.fromArray(S, acc, a + 6 * cols + c);
            FloatVector a61 = FloatVector.fromArray(S, acc, a + 6 * cols + c + S.length());
            FloatVector a62 = FloatVector.fromArray(S, acc, a + 6 * cols + c + 2 * S.length());
            FloatVector a70 = FloatVector.fromArray(S, acc, a + 7 * cols + c);
            FloatVector a71 = FloatVector.fromArray(S, acc, a + 7 * cols + c + S.length());
            FloatVector a72 = FloatVector.fromArray(S, acc, a + 7 * cols + c + 2 * S.length());
            for (int k = 0; k < rank; k++) {
                int row = k * cols + c;
                FloatVector d0 = FloatVector.fromArray(S, down, row);
                FloatVector d1 = FloatVector.fromArray(S, down, row + S.length());
                FloatVector d2 = FloatVector.fromArray(S, down, row + 2 * S.length());
                FloatVector b0 = FloatVector.broadcast(S, up[u + k]);
                a00 = d0.fma(b0, a00);
                a01 = d1.fma(b0, a01);
                a02 = d2.fma(b0, a02);
                FloatVector b1 = FloatVector.broadcast(S, up[u + 1 * rank + k]);
                a10 = d0.fma(b1, a10);
                a11 = d1.fma(b1, a11);
                a12 = d2.fma(b1, a12);
                FloatVector b2 = FloatVector.broadcast(S, up[u + 2 * rank + k]);
                a20 = d0.fma(b2, a20);
                a21 = d1.fma(b2, a21);
                a22 = d2.fma(b2, a22);
                FloatVector b3 = FloatVector.broadcast(S, up[u + 3 * rank + k]);
                a30 = d0.fma(b3, a30);
                a31 = d1.fma(b3, a31);
                a32 = d2.fma(b3, a32);
                FloatVector b4 = FloatVector.broadcast(S, up[u + 4 * rank + k]);
                a40 = d0.fma(b4, a40);
                a41 = d1.fma(b4, a41);
                a42 = d2.fma(b4, a42);
                FloatVector b5 = FloatVector.broadcast(S, up[u + 5 * rank + k]);
                a50 = d0.fma(b5, a50);
                a51 = d1.fma(b5, a51);
                a52 = d2.fma(b5, a52);
                FloatVector b6 = FloatVector.broadcast(S, up[u + 6 * rank + k]);
                a60 = d0.fma(b6, a60);
                a61 = d1.fma(b6, a61);
                a62 = d2.fma(b6, a62);
                FloatVector b7 = FloatVector.broadcast(S, up[u + 7 * rank + k]);
                a70 = d0.fma(b7, a70);
                a71 = d1.fma(b7, a71);
                a72 = d2.fma(b7, a72);
            }
            a00.intoArray(acc, a + c);
            a01.intoArray(acc, a + c + S.length());
            a02.intoArray(acc, a + c + 2 * S.length());
            a10.intoArray(acc, a + 1 * cols + c);
            a11.intoArray(acc, a + 1 * cols + c + S.length());
            a12.intoArray(acc, a + 1 * cols + c + 2 * S.length());
            a20.intoArray(acc, a + 2 * cols + c);
            a21.intoArray(acc, a + 2 * cols + c + S.length());
            a22.intoArray(acc, a + 2 * cols + c + 2 * S.length());
            a30.intoArray(acc, a + 3 * cols + c);
            a31.intoArray(acc, a + 3 * cols + c + S.length());
            a32.intoArray(acc, a + 3 * cols + c + 2 * S.length());
            a40.intoArray(acc, a + 4 * cols + c);
            a41.intoArray(acc, a + 4 * cols + c + S.length());
            a42.intoArray(acc, a + 4 * cols + c + 2 * S.length());
            a50.intoArray(acc, a + 5 * cols + c);
            a51.intoArray(acc, a + 5 * cols + c + S.length());
            a52.intoArray(acc, a + 5 * cols + c + 2 * S.length());
            a60.intoArray(acc, a + 6 * cols + c);
            a61.intoArray(acc, a + 6 * cols + c + S.length());
            a62.intoArray(acc, a + 6 * cols + c + 2 * S.length());
            a70.intoArray(acc, a + 7 * cols + c);
            a71.intoArray(acc, a + 7 * cols + c + S.length());
            a72.intoArray(acc, a + 7 * cols + c + 2 * S.length());
        }
        if (c < cols) {
            for (int j = 0; j < 8; j += 4) {
                tail4(acc, a + j * cols, up, u + j * rank, down, rank, cols, c);
            }
        }
    }

    /** Four rows (the few left below a multiple of eight), every column through masks. */
    private static void four(float[] acc, int a, float[] up, int u, float[] down, int rank, int cols) {
        tail4(acc, a, up, u, down, rank, cols, 0);
    }

    /** Columns [c, cols) of four rows, one masked vector at a time. */
    private static void tail4(float[] acc, int a, float[] up, int u, float[] down, int rank, int cols, int c) {
        for (; c < cols; c += S.length()) {
            VectorMask<Float> m = S.indexInRange(c, cols);
            FloatVector a0 = FloatVector.fromArray(S, acc, a + c, m);
            FloatVector a1 = FloatVector.fromArray(S, acc, a + cols + c, m);
            FloatVector a2 = FloatVector.fromArray(S, acc, a + 2 * cols + c, m);
            FloatVector a3 = FloatVector.fromArray(S, acc, a + 3 * cols + c, m);
            for (int k = 0; k < rank; k++) {
                FloatVector d = FloatVector.fromArray(S, down, k * cols + c, m);
                a0 = d.fma(FloatVector.broadcast(S, up[u + k]), a0);
                a1 = d.fma(FloatVector.broadcast(S, up[u + rank + k]), a1);
                a2 = d.fma(FloatVector.broadcast(S, up[u + 2 * rank + k]), a2);
                a3 = d.fma(FloatVector.broadcast(S, up[u + 3 * rank + k]), a3);
            }
            a0.intoArray(acc, a + c, m);
            a1.intoArray(acc, a + cols + c, m);
            a2.intoArray(acc, a + 2 * cols + c, m);
            a3.intoArray(acc, a + 3 * cols + c, m);
        }
    }

    private static void one(float[] acc, int a, float[] up, int u, float[] down, int rank, int cols) {
        for (int c = 0; c < cols; c += S.length()) {
            VectorMask<Float> m = S.indexInRange(c, cols);
            FloatVector a0 = FloatVector.fromArray(S, acc, a + c, m);
            for (int k = 0; k < rank; k++) {
                a0 = FloatVector.fromArray(S, down, k * cols + c, m).fma(FloatVector.broadcast(S, up[u + k]), a0);
            }
            a0.intoArray(acc, a + c, m);
        }
    }
}
