package dev.jdiffusion.lora;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * acc[j, :] += Σ_k up[j, k] · down[k, :] for a few rows j at a time: each vector of {@code down} is
 * loaded once and multiplied into four rows' accumulators, so a rank-r update of a row block runs
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
        for (; j + 4 <= rows; j += 4) {
            four(acc, (accRow + j) * cols, up, (upRow + j) * rank, down, rank, cols);
        }
        for (; j < rows; j++) {
            one(acc, (accRow + j) * cols, up, (upRow + j) * rank, down, rank, cols);
        }
    }

    private static void four(float[] acc, int a, float[] up, int u, float[] down, int rank, int cols) {
        int c = 0;
        int bound = S.loopBound(cols);
        for (; c < bound; c += S.length()) {
            FloatVector a0 = FloatVector.fromArray(S, acc, a + c);
            FloatVector a1 = FloatVector.fromArray(S, acc, a + cols + c);
            FloatVector a2 = FloatVector.fromArray(S, acc, a + 2 * cols + c);
            FloatVector a3 = FloatVector.fromArray(S, acc, a + 3 * cols + c);
            for (int k = 0; k < rank; k++) {
                FloatVector d = FloatVector.fromArray(S, down, k * cols + c);
                a0 = d.fma(FloatVector.broadcast(S, up[u + k]), a0);
                a1 = d.fma(FloatVector.broadcast(S, up[u + rank + k]), a1);
                a2 = d.fma(FloatVector.broadcast(S, up[u + 2 * rank + k]), a2);
                a3 = d.fma(FloatVector.broadcast(S, up[u + 3 * rank + k]), a3);
            }
            a0.intoArray(acc, a + c);
            a1.intoArray(acc, a + cols + c);
            a2.intoArray(acc, a + 2 * cols + c);
            a3.intoArray(acc, a + 3 * cols + c);
        }
        if (c < cols) {
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
