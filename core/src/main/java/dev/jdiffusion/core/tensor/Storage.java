package dev.jdiffusion.core.tensor;

import java.lang.foreign.MemorySegment;

/**
 * The memory behind a tensor. Host float32 activations live in a {@code float[]} (the fastest
 * layout for the Vector API); weights of any storage type may live in a {@link MemorySegment}, which
 * may be a memory-mapped checkpoint, so a half-precision file is never widened in memory.
 * Backends with device memory add their own kinds.
 */
public interface Storage {

    /** Size in bytes. */
    long byteSize();

    /** Whether the bytes are addressable from Java on the host. */
    default boolean isHost() {
        return true;
    }

    /** Releases the memory where that is meaningful (device memory, pooled buffers). Idempotent. */
    default void release() {
    }

    /** Host float32 data in a Java array. */
    record FloatArray(float[] data) implements Storage {
        @Override
        public long byteSize() {
            return 4L * data.length;
        }
    }

    /** Host data of any dtype in a memory segment (heap, native or memory-mapped), little-endian. */
    record Segment(MemorySegment segment) implements Storage {
        @Override
        public long byteSize() {
            return segment.byteSize();
        }
    }
}
