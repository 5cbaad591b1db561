package dev.jdiffusion.core.tensor;

import java.util.Arrays;

/** Small helpers on shapes ({@code int[]}), used by tensors and ops for checks and messages. */
public final class Shapes {
    private Shapes() {
    }

    public static String toString(int[] shape) {
        return Arrays.toString(shape);
    }

    public static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** Product of {@code shape[from..to)}. */
    public static long numel(int[] shape, int from, int to) {
        long n = 1;
        for (int i = from; i < to; i++) {
            n *= shape[i];
        }
        return n;
    }

    /** Normalises a possibly negative axis index. */
    public static int axis(int axis, int rank) {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) {
            throw new ShapeException("axis " + axis + " out of range for rank " + rank);
        }
        return a;
    }

    static int[] resolveReshape(int[] from, int[] to) {
        long total = numel(from);
        int unknown = -1;
        long known = 1;
        for (int i = 0; i < to.length; i++) {
            if (to[i] == -1) {
                if (unknown >= 0) {
                    throw new ShapeException("reshape " + toString(from) + " to " + toString(to) + ": more than one -1");
                }
                unknown = i;
            } else if (to[i] < 0) {
                throw new ShapeException("reshape " + toString(from) + " to " + toString(to) + ": negative size");
            } else {
                known *= to[i];
            }
        }
        int[] out = to.clone();
        if (unknown >= 0) {
            if (known == 0 || total % known != 0) {
                throw new ShapeException("reshape " + toString(from) + " to " + toString(to)
                        + ": cannot infer the -1 axis");
            }
            out[unknown] = (int) (total / known);
        } else if (known != total) {
            throw new ShapeException("reshape " + toString(from) + " (" + total + " elements) to " + toString(to)
                    + " (" + known + " elements)");
        }
        return out;
    }
}
