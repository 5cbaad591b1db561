package dev.jdiffusion.cuda;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Device memory handed out in size classes and kept for reuse, so that a denoising loop, which asks
 * for the same sizes every step, allocates on the device only in its first step. Sizes round up to
 * 256 bytes, then to powers of two up to 2 MiB, then to multiples of 2 MiB. Not thread-safe: one
 * pool per stream.
 */
final class DevicePool<H> implements AutoCloseable {
    /** The device's allocator (cuMemAlloc / cuMemFree), or a fake one in tests. */
    interface Allocator<H> {
        H allocate(long bytes);

        void free(H block);
    }

    private static final long MIN = 256;
    private static final long LARGE = 2L << 20;

    private final Allocator<H> allocator;
    private final TreeMap<Long, ArrayDeque<H>> free = new TreeMap<>();
    private final Map<H, Long> sizes = new HashMap<>();
    private long reserved;
    private long inUse;
    private long allocations;

    DevicePool(Allocator<H> allocator) {
        this.allocator = allocator;
    }

    /** The size class of a request in bytes. */
    static long sizeClass(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation size " + bytes);
        }
        if (bytes <= MIN) {
            return MIN;
        }
        if (bytes <= LARGE) {
            return Long.highestOneBit(bytes - 1) << 1;
        }
        return (bytes + LARGE - 1) / LARGE * LARGE;
    }

    /** A block of at least {@code bytes}, reused when one of its class is free. */
    H acquire(long bytes) {
        long size = sizeClass(bytes);
        ArrayDeque<H> q = free.get(size);
        H address;
        if (q != null && !q.isEmpty()) {
            address = q.pop();
        } else {
            address = allocator.allocate(size);
            allocations++;
            reserved += size;
            sizes.put(address, size);
        }
        inUse += size;
        return address;
    }

    /** Gives a block back for reuse. */
    void release(H address) {
        Long size = sizes.get(address);
        if (size == null) {
            throw new IllegalArgumentException(address + " was not allocated by this pool");
        }
        ArrayDeque<H> q = free.computeIfAbsent(size, s -> new ArrayDeque<>());
        if (q.contains(address)) {
            throw new IllegalStateException(address + " released twice");
        }
        q.push(address);
        inUse -= size;
    }

    /**
     * Takes a free block out of reuse, as if acquired again (a captured graph keeps the blocks it
     * writes, see {@link CudaGraph}); {@link #release} gives it back.
     */
    void claim(H address) {
        Long size = sizes.get(address);
        ArrayDeque<H> q = size == null ? null : free.get(size);
        if (q == null || !q.remove(address)) {
            throw new IllegalStateException(address + " is not a free block of this pool");
        }
        inUse += size;
    }

    /** Frees the free blocks on the device (after an out-of-memory, or to shrink). */
    void trim() {
        for (ArrayDeque<H> q : free.values()) {
            for (H a : q) {
                allocator.free(a);
                reserved -= sizes.remove(a);
            }
            q.clear();
        }
    }

    /** Device allocations made so far. */
    long allocations() {
        return allocations;
    }

    /** Bytes held on the device (in use or free for reuse). */
    long reserved() {
        return reserved;
    }

    /** Bytes handed out and not yet released. */
    long inUse() {
        return inUse;
    }

    /** Frees every block; blocks still in use become invalid. */
    @Override
    public void close() {
        for (H a : sizes.keySet()) {
            allocator.free(a);
        }
        sizes.clear();
        free.clear();
        reserved = 0;
        inUse = 0;
    }
}
