package dev.jdiffusion.checkpoint;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Half;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.function.Supplier;

/**
 * One tensor of a checkpoint as it is stored: its element type, its shape, and its elements as
 * dense row-major little-endian bytes. Reading is lazy: nothing is touched until {@link #bytes()}
 * or a conversion asks for it. Whatever the file format, a tensor looks the same from here on.
 */
public interface StoredTensor {
    StoredType type();

    long[] shape();

    /**
     * The elements, dense, row-major, little-endian, in {@link #type()}: a view of the file where
     * it is stored that way (valid while the checkpoint is open), otherwise a fresh copy.
     */
    MemorySegment bytes();

    default long numel() {
        long n = 1;
        for (long d : shape()) {
            n *= d;
        }
        return n;
    }

    default int[] intShape() {
        long[] s = shape();
        int[] r = new int[s.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = Math.toIntExact(s[i]);
        }
        return r;
    }

    /** The elements as doubles (exact for every type but I64 beyond 2^53). */
    default double[] doubles() {
        MemorySegment seg = bytes();
        StoredType t = type();
        double[] v = new double[Math.toIntExact(numel())];
        for (int i = 0; i < v.length; i++) {
            v[i] = t.get(seg, i);
        }
        return v;
    }

    /**
     * A tensor for compute: F32, F16 and BF16 keep their type (a view of the file when the stored
     * bytes are dense), every other type is widened to F32.
     */
    default Tensor toTensor() {
        DType t = type().tensorType();
        if (t != null) {
            return Tensor.wrap(bytes(), t, intShape());
        }
        double[] d = doubles();
        float[] f = new float[d.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) d[i];
        }
        return Tensor.of(f, intShape());
    }

    /**
     * This tensor converted to another floating type (F32, F16 or BF16), rounding to nearest even;
     * the same tensor when the type already matches. Integer and boolean tensors are never cast:
     * they are returned unchanged, since they are indices or masks, not weights.
     */
    default StoredTensor castTo(StoredType target) {
        if (target.tensorType() == null) {
            throw new IllegalArgumentException("can only cast to F32, F16 or BF16, not " + target);
        }
        if (type() == target || !type().isFloatingPoint()) {
            return this;
        }
        return lazy(target, shape(), () -> {
            MemorySegment in = bytes();
            StoredType from = type();
            long n = numel();
            if (FloatCasts.handles(from, target)) {
                return FloatCasts.convert(in, from, target, n,
                        MemorySegment.ofArray(new byte[Math.toIntExact(n * target.byteSize())]));
            }
            MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(n * target.byteSize())]);
            for (long i = 0; i < n; i++) {
                target.putFloat(out, i, (float) from.get(in, i));
            }
            return out;
        });
    }

    /**
     * The elements as {@code target}, resident in memory, for compute: where the checkpoint already
     * stores them that way and maps its file, the view of the mapping with its pages read in now
     * (so a 2 GB fp16 file costs no second 2 GB; valid while the checkpoint is open); otherwise
     * {@link #materialise materialised} into memory from {@code allocator}.
     */
    default MemorySegment load(StoredType target, SegmentAllocator allocator) {
        if (castTo(target) == this) {
            MemorySegment b = bytes();
            if (b.isMapped()) {
                FloatCasts.touch(b);
                return b;
            }
        }
        return materialise(target, allocator);
    }

    /**
     * The elements as {@code target} (converted as {@link #castTo} does) copied into memory from
     * {@code allocator} (an arena that the caller closes when the weights are no longer needed, so
     * gigabytes are released at once rather than when the garbage collector gets to them). Large
     * tensors are copied or converted on all cores.
     */
    default MemorySegment materialise(StoredType target, SegmentAllocator allocator) {
        StoredTensor cast = castTo(target);
        MemorySegment out = allocator.allocate(numel() * cast.type().byteSize(), 64);
        if (cast != this && FloatCasts.handles(type(), cast.type())) {
            return FloatCasts.convert(bytes(), type(), cast.type(), numel(), out); // straight into out
        }
        return FloatCasts.copy(cast.bytes(), out);
    }

    /** A tensor of the given type and shape whose bytes {@code data} produces when they are asked for. */
    static StoredTensor lazy(StoredType type, long[] shape, Supplier<MemorySegment> data) {
        long[] dims = shape.clone();
        return new StoredTensor() {
            @Override
            public StoredType type() {
                return type;
            }

            @Override
            public long[] shape() {
                return dims.clone();
            }

            @Override
            public MemorySegment bytes() {
                return data.get();
            }
        };
    }

    /** A compute tensor seen as a stored one (what the writer and the converters consume). */
    static StoredTensor of(Tensor t) {
        StoredType type = StoredType.of(t.dtype());
        long[] shape = new long[t.rank()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = t.dim(i);
        }
        return lazy(type, shape, () -> {
            long n = t.numel();
            long size = type.byteSize();
            if (t.storage() instanceof Storage.Segment(MemorySegment seg)) {
                return seg.asSlice(t.offset() * size, n * size);
            }
            if (t.isFloatArray() && ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
                return MemorySegment.ofArray(t.floatArray()).asSlice(t.offset() * 4, n * 4);
            }
            MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(n * size)]);
            float[] chunk = new float[1 << 14];
            for (long at = 0; at < n; at += chunk.length) {
                int len = (int) Math.min(chunk.length, n - at);
                t.copyTo(at, chunk, 0, len);
                for (int i = 0; i < len; i++) {
                    type.putFloat(out, at + i, chunk[i]);
                }
            }
            return out;
        });
    }
}
