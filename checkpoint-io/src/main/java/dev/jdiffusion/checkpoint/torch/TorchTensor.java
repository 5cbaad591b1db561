package dev.jdiffusion.checkpoint.torch;

import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A tensor of a torch checkpoint: a view (offset, sizes, strides, all in elements) of a storage
 * that other tensors may share. {@link #bytes()} returns the storage's bytes directly when the view
 * is dense and row-major, and gathers a dense copy otherwise (transposes, slices, stride 0).
 */
public final class TorchTensor implements StoredTensor {
    private final TorchStorage storage;
    private final long offset;
    private final long[] shape;
    private final long[] stride;

    TorchTensor(TorchStorage storage, long offset, long[] shape, long[] stride) {
        this.storage = storage;
        this.offset = offset;
        this.shape = shape;
        this.stride = stride;
    }

    /** The storage this tensor views (shared storages are the same object). */
    public TorchStorage storage() {
        return storage;
    }

    public long storageOffset() {
        return offset;
    }

    public long[] stride() {
        return stride.clone();
    }

    @Override
    public StoredType type() {
        return storage.type();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Checks that every element of the view lies inside its storage; called once the storage is known. */
    void validate(String source) throws CheckpointFormatException {
        long numel = 1;
        for (long d : shape) {
            numel = Math.multiplyExact(numel, d);
        }
        if (offset < 0) {
            throw new CheckpointFormatException(source + ": tensor over storage \"" + storage.key()
                    + "\" has a negative storage offset " + offset);
        }
        if (numel == 0) {
            return;
        }
        long last = offset;
        for (int i = 0; i < shape.length; i++) {
            if (stride[i] < 0) {
                throw new CheckpointFormatException(source + ": tensor over storage \"" + storage.key()
                        + "\" has a negative stride " + stride[i]);
            }
            last = Math.addExact(last, Math.multiplyExact(shape[i] - 1, stride[i]));
        }
        if (last >= storage.numel()) {
            throw new CheckpointFormatException(source + ": a tensor of shape " + java.util.Arrays.toString(shape)
                    + ", strides " + java.util.Arrays.toString(stride) + " at offset " + offset + " reaches element "
                    + last + " of storage \"" + storage.key() + "\", which holds " + storage.numel() + " elements");
        }
    }

    private boolean isDense() {
        long expected = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && stride[i] != expected) {
                return false;
            }
            expected *= shape[i];
        }
        return true;
    }

    @Override
    public MemorySegment bytes() {
        int es = storage.type().byteSize();
        long n = numel();
        MemorySegment src = storage.bytes();
        if (n == 0) {
            return MemorySegment.ofArray(new byte[0]);
        }
        if (isDense()) {
            return src.asSlice(offset * es, n * es);
        }
        MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(n * es)]);
        int rank = shape.length;
        long[] idx = new long[rank];
        long inner = shape[rank - 1];
        long innerStride = stride[rank - 1];
        long at = 0;
        while (at < n) {
            long base = offset;
            for (int i = 0; i < rank - 1; i++) {
                base += idx[i] * stride[i];
            }
            if (innerStride == 1) {
                MemorySegment.copy(src, base * es, out, at * es, inner * es);
            } else {
                for (long j = 0; j < inner; j++) {
                    MemorySegment.copy(src, ValueLayout.JAVA_BYTE, (base + j * innerStride) * es, out,
                            ValueLayout.JAVA_BYTE, (at + j) * es, es);
                }
            }
            at += inner;
            for (int i = rank - 2; i >= 0; i--) {
                if (++idx[i] < shape[i]) {
                    break;
                }
                idx[i] = 0;
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return "TorchTensor" + java.util.Arrays.toString(shape) + " " + type() + " of storage " + storage.key();
    }
}
