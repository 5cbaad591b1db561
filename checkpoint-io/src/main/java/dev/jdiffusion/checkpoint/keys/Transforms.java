package dev.jdiffusion.checkpoint.keys;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

/**
 * Lazy reshapes, transposes, row slices and row concatenations of stored tensors: what the key
 * mappings need to turn one naming's layout into another's (a 1×1 convolution into a linear
 * weight, a fused q/k/v projection into three). Nothing is read until {@link StoredTensor#bytes()}.
 */
public final class Transforms {
    private Transforms() {
    }

    /** The same elements under another shape with the same element count. */
    public static StoredTensor reshape(StoredTensor t, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n != t.numel()) {
            throw new IllegalArgumentException("cannot reshape " + Arrays.toString(t.shape()) + " to "
                    + Arrays.toString(shape));
        }
        return StoredTensor.lazy(t.type(), shape.clone(), t::bytes);
    }

    /** A 2-D tensor transposed. */
    public static StoredTensor transpose(StoredTensor t) {
        long[] s = t.shape();
        if (s.length != 2) {
            throw new IllegalArgumentException("transpose needs a 2-D tensor, got " + Arrays.toString(s));
        }
        long rows = s[0];
        long cols = s[1];
        int es = t.type().byteSize();
        return StoredTensor.lazy(t.type(), new long[] {cols, rows}, () -> {
            MemorySegment src = t.bytes();
            MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(rows * cols * es)]);
            for (long r = 0; r < rows; r++) {
                for (long c = 0; c < cols; c++) {
                    MemorySegment.copy(src, (r * cols + c) * es, out, (c * rows + r) * es, es);
                }
            }
            return out;
        });
    }

    /** Rows {@code [start, start + count)} of the first axis. */
    public static StoredTensor rows(StoredTensor t, long start, long count) {
        long[] s = t.shape();
        if (s.length == 0 || start < 0 || count < 0 || start + count > s[0]) {
            throw new IllegalArgumentException("rows " + start + ".." + (start + count) + " of "
                    + Arrays.toString(s));
        }
        long rowBytes = t.numel() / Math.max(1, s[0]) * t.type().byteSize();
        long[] shape = s.clone();
        shape[0] = count;
        return StoredTensor.lazy(t.type(), shape, () -> t.bytes().asSlice(start * rowBytes, count * rowBytes));
    }

    /** The tensors stacked along their first axis (same type, same trailing shape). */
    public static StoredTensor concatRows(List<StoredTensor> parts) {
        StoredTensor first = parts.get(0);
        long[] shape = first.shape();
        long rows = 0;
        for (StoredTensor p : parts) {
            long[] ps = p.shape();
            if (p.type() != first.type() || ps.length != shape.length
                    || !Arrays.equals(ps, 1, ps.length, shape, 1, shape.length)) {
                throw new IllegalArgumentException("cannot stack " + Arrays.toString(ps) + " " + p.type() + " onto "
                        + Arrays.toString(shape) + " " + first.type());
            }
            rows += ps[0];
        }
        shape[0] = rows;
        long total = 1;
        for (long d : shape) {
            total *= d;
        }
        long bytes = total * first.type().byteSize();
        return StoredTensor.lazy(first.type(), shape, () -> {
            MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(bytes)]);
            long at = 0;
            for (StoredTensor p : parts) {
                MemorySegment b = p.bytes();
                MemorySegment.copy(b, 0, out, at, b.byteSize());
                at += b.byteSize();
            }
            return out;
        });
    }
}
