package dev.jdiffusion.cuda;

import dev.jdiffusion.core.tensor.ShapeException;
import java.util.Arrays;

/**
 * The index arithmetic the layout kernels are given, computed on the host: element strides of up
 * to six axes for broadcasting binary ops and for permutations (the kernels' {@code Strides6} and
 * {@code Permute6} structs, laid out as consecutive 64-bit integers), and launch sizes.
 */
final class Layouts {
    static final int AXES = 6;

    private Layouts() {
    }

    /** numpy broadcasting of two shapes (right-aligned); throws naming both. */
    static int[] broadcast(int[] a, int[] b) {
        int n = Math.max(a.length, b.length);
        if (n > AXES) {
            throw new ShapeException("at most " + AXES + " axes, got " + Arrays.toString(a) + " and " + Arrays.toString(b));
        }
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            int da = i < n - a.length ? 1 : a[i - (n - a.length)];
            int db = i < n - b.length ? 1 : b[i - (n - b.length)];
            if (da != db && da != 1 && db != 1) {
                throw new ShapeException("shapes " + Arrays.toString(a) + " and " + Arrays.toString(b) + " do not broadcast");
            }
            out[i] = Math.max(da, db);
        }
        return out;
    }

    /** The element strides of a contiguous {@code shape} read along the broadcast {@code out} shape (0 where it repeats), left-padded to six axes. */
    static long[] stridesAlong(int[] shape, int[] out) {
        long[] s = new long[AXES];
        long stride = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            int axis = AXES - (shape.length - i);
            s[axis] = shape[i] == 1 && out[out.length - (shape.length - i)] != 1 ? 0 : stride;
            stride *= shape[i];
        }
        return s;
    }

    /** The {@code Strides6} struct of {@code binary_f32}: the output shape, then a's and b's strides. */
    static long[] binary(int[] a, int[] b) {
        int[] out = broadcast(a, b);
        long[] st = new long[3 * AXES];
        long[] shape = padded(out);
        System.arraycopy(shape, 0, st, 0, AXES);
        System.arraycopy(stridesAlong(a, out), 0, st, AXES, AXES);
        System.arraycopy(stridesAlong(b, out), 0, st, 2 * AXES, AXES);
        return st;
    }

    /** The {@code Permute6} struct of {@code permute_f32}: the output shape, then x's stride along each output axis. */
    static long[] permute(int[] shape, int[] perm) {
        if (perm.length != shape.length || shape.length > AXES) {
            throw new ShapeException("permutation " + Arrays.toString(perm) + " does not fit shape " + Arrays.toString(shape));
        }
        boolean[] seen = new boolean[perm.length];
        for (int p : perm) {
            if (p < 0 || p >= perm.length || seen[p]) {
                throw new ShapeException(Arrays.toString(perm) + " is not a permutation of the axes of " + Arrays.toString(shape));
            }
            seen[p] = true;
        }
        long[] xStride = new long[shape.length];
        long s = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            xStride[i] = s;
            s *= shape[i];
        }
        long[] st = new long[2 * AXES];
        Arrays.fill(st, 0, AXES, 1);
        int off = AXES - shape.length;
        for (int i = 0; i < perm.length; i++) {
            st[off + i] = shape[perm[i]];
            st[AXES + off + i] = xStride[perm[i]];
        }
        return st;
    }

    static long[] padded(int[] shape) {
        long[] s = new long[AXES];
        Arrays.fill(s, 1);
        for (int i = 0; i < shape.length; i++) {
            s[AXES - shape.length + i] = shape[i];
        }
        return s;
    }

    /** Blocks of {@code threads} for a grid-stride loop over n elements, at most {@code maxBlocks}. */
    static int blocks(long n, int threads, int maxBlocks) {
        return (int) Math.max(1, Math.min(maxBlocks, (n + threads - 1) / threads));
    }
}
