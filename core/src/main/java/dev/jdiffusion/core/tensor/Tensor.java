package dev.jdiffusion.core.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A contiguous, row-major (NCHW for images) n-dimensional array.
 *
 * <p>Views are free and share storage: {@link #reshape}, {@link #slice} and {@link #select} along
 * the outermost axis. Everything else is an op of a {@link dev.jdiffusion.core.backend.Backend} and
 * produces a new tensor. Closing a tensor releases its storage if it owns it (views never do);
 * the CPU backend's heap arrays are then left to the garbage collector, a device backend returns
 * its memory to the pool.
 */
public final class Tensor implements AutoCloseable {
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED
            .withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED
            .withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    private final int[] shape;
    private final DType dtype;
    private final Storage storage;
    private final long offset;
    private final boolean owner;

    public Tensor(Storage storage, DType dtype, long offset, int[] shape, boolean owner) {
        this.storage = Objects.requireNonNull(storage, "storage");
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        this.shape = checkShape(shape);
        this.offset = offset;
        this.owner = owner;
        long needed = (offset + numel()) * dtype.byteSize();
        if (offset < 0 || needed > storage.byteSize()) {
            throw new ShapeException("tensor of shape " + Shapes.toString(shape) + " (" + dtype + ") at element offset "
                    + offset + " needs " + needed + " bytes, its storage has " + storage.byteSize());
        }
    }

    /** Wraps a float array without copying. */
    public static Tensor of(float[] data, int... shape) {
        long n = Shapes.numel(checkShape(shape));
        if (n != data.length) {
            throw new ShapeException("shape " + Shapes.toString(shape) + " has " + n + " elements, the array has "
                    + data.length);
        }
        return new Tensor(new Storage.FloatArray(data), DType.F32, 0, shape, true);
    }

    /** A new float32 tensor of zeros. */
    public static Tensor zeros(int... shape) {
        long n = Shapes.numel(checkShape(shape));
        if (n > Integer.MAX_VALUE - 16) {
            throw new ShapeException("shape " + Shapes.toString(shape) + " has " + n
                    + " elements, more than one host float32 tensor can hold");
        }
        return new Tensor(new Storage.FloatArray(new float[(int) n]), DType.F32, 0, shape, true);
    }

    /** Wraps little-endian data of the given type in a memory segment (for example a mapped file). */
    public static Tensor wrap(MemorySegment segment, DType dtype, int... shape) {
        return new Tensor(new Storage.Segment(segment), dtype, 0, shape, true);
    }

    /** A host tensor holding {@code data} converted to the 16-bit storage type {@code dtype}. */
    public static Tensor ofHalf(float[] data, DType dtype, int... shape) {
        if (!dtype.isHalf()) {
            throw new IllegalArgumentException("ofHalf needs F16 or BF16, got " + dtype);
        }
        long n = Shapes.numel(checkShape(shape));
        if (n != data.length) {
            throw new ShapeException("shape " + Shapes.toString(shape) + " has " + n + " elements, the array has "
                    + data.length);
        }
        short[] bits = new short[data.length];
        for (int i = 0; i < data.length; i++) {
            bits[i] = Half.fromFloat(dtype, data[i]);
        }
        return new Tensor(new Storage.Segment(MemorySegment.ofArray(bits)), dtype, 0, shape, true);
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of axis {@code axis}; negative axes count from the end. */
    public int dim(int axis) {
        return shape[Shapes.axis(axis, shape.length)];
    }

    public long numel() {
        return Shapes.numel(shape);
    }

    public DType dtype() {
        return dtype;
    }

    public Storage storage() {
        return storage;
    }

    /** Offset of the first element in the storage, in elements. */
    public long offset() {
        return offset;
    }

    /** The same elements under another shape; one axis may be -1. */
    public Tensor reshape(int... newShape) {
        int[] resolved = Shapes.resolveReshape(shape, newShape);
        return new Tensor(storage, dtype, offset, resolved, false);
    }

    /** Elements {@code start..end-1} along the outermost axis, as a view. */
    public Tensor slice(int start, int end) {
        if (rank() == 0 || start < 0 || end > shape[0] || start > end) {
            throw new ShapeException("slice [" + start + ", " + end + ") out of range for shape " + Shapes.toString(shape));
        }
        int[] s = shape.clone();
        s[0] = end - start;
        long inner = Shapes.numel(shape) / Math.max(1, shape[0]);
        return new Tensor(storage, dtype, offset + start * inner, s, false);
    }

    /** Element {@code index} of the outermost axis with that axis removed, as a view. */
    public Tensor select(int index) {
        Tensor t = slice(index, index + 1);
        return t.reshape(Arrays.copyOfRange(shape, 1, shape.length));
    }

    /** True when this is float32 data in a Java array (the CPU backend's activation layout). */
    public boolean isFloatArray() {
        return dtype == DType.F32 && storage instanceof Storage.FloatArray;
    }

    /** The backing array of a float32 array tensor; elements start at {@link #offset()}. */
    public float[] floatArray() {
        if (storage instanceof Storage.FloatArray(float[] data) && dtype == DType.F32) {
            return data;
        }
        throw new IllegalStateException("tensor " + Shapes.toString(shape) + " is " + dtype + " in "
                + storage.getClass().getSimpleName() + ", not a float32 array");
    }

    /** Element {@code i} (flat, row-major) as float, whatever the storage type. Host only. */
    public float getFloat(long i) {
        if (i < 0 || i >= numel()) {
            throw new IndexOutOfBoundsException("index " + i + " for shape " + Shapes.toString(shape));
        }
        long e = offset + i;
        return switch (storage) {
            case Storage.FloatArray(float[] data) -> data[(int) e];
            case Storage.Segment(MemorySegment seg) -> switch (dtype) {
                case F32 -> seg.get(FLOAT_LE, e * 4);
                case F16, BF16 -> Half.toFloat(dtype, seg.get(SHORT_LE, e * 2));
            };
            default -> throw new IllegalStateException("tensor " + Shapes.toString(shape)
                    + " is not on the host; copy it with its backend first");
        };
    }

    /** Copies rows {@code [from, from+count)} of the flat data into {@code dst[dstOff..]} as float32. */
    public void copyTo(long from, float[] dst, int dstOff, int count) {
        long e = offset + from;
        if (from < 0 || from + count > numel()) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + (from + count) + ") for shape "
                    + Shapes.toString(shape));
        }
        switch (storage) {
            case Storage.FloatArray(float[] data) -> System.arraycopy(data, (int) e, dst, dstOff, count);
            case Storage.Segment(MemorySegment seg) -> {
                switch (dtype) {
                    case F32 -> MemorySegment.copy(seg, FLOAT_LE, e * 4, dst, dstOff, count);
                    case F16 -> {
                        for (int i = 0; i < count; i++) {
                            dst[dstOff + i] = Half.f16ToFloat(seg.get(SHORT_LE, (e + i) * 2));
                        }
                    }
                    case BF16 -> {
                        for (int i = 0; i < count; i++) {
                            dst[dstOff + i] = Half.bf16ToFloat(seg.get(SHORT_LE, (e + i) * 2));
                        }
                    }
                }
            }
            default -> throw new IllegalStateException("tensor " + Shapes.toString(shape)
                    + " is not on the host; copy it with its backend first");
        }
    }

    /** A fresh float32 copy of all elements. Host only. */
    public float[] toFloatArray() {
        long n = numel();
        float[] out = new float[Math.toIntExact(n)];
        copyTo(0, out, 0, (int) n);
        return out;
    }

    /** A host copy of this tensor in another dtype (a copy even when the dtype is the same). */
    public Tensor to(DType target) {
        float[] values = toFloatArray();
        return target == DType.F32 ? of(values, shape.clone()) : ofHalf(values, target, shape.clone());
    }

    /** Whether this tensor owns its storage (views do not). */
    public boolean isOwner() {
        return owner;
    }

    @Override
    public void close() {
        if (owner) {
            storage.release();
        }
    }

    @Override
    public String toString() {
        return "Tensor" + Shapes.toString(shape) + " " + dtype;
    }

    private static int[] checkShape(int[] shape) {
        Objects.requireNonNull(shape, "shape");
        for (int d : shape) {
            if (d < 0) {
                throw new ShapeException("negative size in shape " + Shapes.toString(shape));
            }
        }
        return shape.clone();
    }
}
