package dev.jdiffusion.core.cpu;

import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Shapes;
import java.util.ArrayList;
import java.util.List;

/**
 * Numpy broadcasting of two shapes, reduced to rows: axes where both operands advance the same way
 * are merged, so that the innermost (merged) axis is a contiguous run or a repeated scalar for each
 * operand, and the outer axes are walked row by row.
 */
final class Broadcast {
    private final int[] outShape;
    private final int[] outer;       // merged outer axes (row index decomposition)
    private final long[] outerA;
    private final long[] outerB;
    private final int inner;
    private final int innerStrideA;
    private final int innerStrideB;

    private Broadcast(int[] outShape, int[] outer, long[] outerA, long[] outerB, int inner, int sa, int sb) {
        this.outShape = outShape;
        this.outer = outer;
        this.outerA = outerA;
        this.outerB = outerB;
        this.inner = inner;
        this.innerStrideA = sa;
        this.innerStrideB = sb;
    }

    static Broadcast of(int[] a, int[] b, String op) {
        int rank = Math.max(a.length, b.length);
        int[] pa = pad(a, rank);
        int[] pb = pad(b, rank);
        int[] out = new int[rank];
        for (int i = 0; i < rank; i++) {
            if (pa[i] == pb[i] || pb[i] == 1) {
                out[i] = pa[i];
            } else if (pa[i] == 1) {
                out[i] = pb[i];
            } else {
                throw new ShapeException(op + ": shapes " + Shapes.toString(a) + " and " + Shapes.toString(b)
                        + " cannot be broadcast together (axis " + i + ": " + pa[i] + " vs " + pb[i] + ")");
            }
        }
        long[] sa = strides(pa, out);
        long[] sb = strides(pb, out);
        // merge axes from the inside out
        List<long[]> dims = new ArrayList<>(); // {size, strideA, strideB}
        for (int i = rank - 1; i >= 0; i--) {
            if (out[i] == 1) {
                continue;
            }
            if (!dims.isEmpty()) {
                long[] last = dims.get(dims.size() - 1);
                if (sa[i] == last[1] * last[0] && sb[i] == last[2] * last[0]) {
                    last[0] *= out[i];
                    continue;
                }
            }
            dims.add(new long[] {out[i], sa[i], sb[i]});
        }
        if (dims.isEmpty()) {
            dims.add(new long[] {1, 0, 0});
        }
        long[] in = dims.get(0);
        int inner = Math.toIntExact(in[0]);
        int n = dims.size() - 1;
        int[] outer = new int[n];
        long[] oa = new long[n];
        long[] ob = new long[n];
        for (int i = 0; i < n; i++) {            // outermost first
            long[] d = dims.get(dims.size() - 1 - i);
            outer[i] = (int) d[0];
            oa[i] = d[1];
            ob[i] = d[2];
        }
        return new Broadcast(out, outer, oa, ob, inner, (int) in[1], (int) in[2]);
    }

    private static int[] pad(int[] s, int rank) {
        int[] p = new int[rank];
        java.util.Arrays.fill(p, 1);
        System.arraycopy(s, 0, p, rank - s.length, s.length);
        return p;
    }

    /** Element strides of an operand of padded shape {@code s} inside the output shape (0 where broadcast). */
    private static long[] strides(int[] s, int[] out) {
        long[] st = new long[s.length];
        long acc = 1;
        for (int i = s.length - 1; i >= 0; i--) {
            st[i] = (s[i] == 1 && out[i] != 1) ? 0 : acc;
            acc *= s[i];
        }
        return st;
    }

    int[] outShape() {
        return outShape.clone();
    }

    int inner() {
        return inner;
    }

    int rows() {
        int r = 1;
        for (int d : outer) {
            r *= d;
        }
        return r;
    }

    int innerStrideA() {
        return innerStrideA;
    }

    int innerStrideB() {
        return innerStrideB;
    }

    int offsetA(int row) {
        return offset(row, outerA);
    }

    int offsetB(int row) {
        return offset(row, outerB);
    }

    private int offset(int row, long[] strides) {
        long off = 0;
        for (int i = outer.length - 1; i >= 0; i--) {
            off += (row % outer[i]) * strides[i];
            row /= outer[i];
        }
        return (int) off;
    }
}
