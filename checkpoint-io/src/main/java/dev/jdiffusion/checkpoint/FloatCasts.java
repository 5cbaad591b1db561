package dev.jdiffusion.checkpoint;

import dev.jdiffusion.core.tensor.Half;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.stream.LongStream;

/**
 * Bulk conversion between the three floating storage types (F32, F16, BF16), in chunks that the
 * JIT turns into vector conversions, and over all cores for large tensors. Rounding is to nearest
 * even, exactly as {@link StoredType#putFloat} does one element at a time.
 */
final class FloatCasts {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort S16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Elements converted per pass through the small buffers (which stay in L1/L2). */
    private static final int CHUNK = 1 << 13;
    /** Elements per parallel task. */
    private static final long TASK = 1L << 17;
    /** Below this many elements a cast runs on the calling thread. */
    private static final long PARALLEL_FROM = 1L << 18;

    /** A thread that never runs: segments it may access are not confined to their creator. */
    private static final Thread ANOTHER_THREAD = new Thread(() -> { });

    private FloatCasts() {
    }

    /**
     * Task indices 0..tasks−1, spread over threads when the work ({@code size} elements or bytes) is
     * large enough and no segment is confined to its creating thread.
     */
    private static LongStream tasks(long tasks, long size, MemorySegment... segments) {
        LongStream range = LongStream.range(0, tasks);
        if (size < PARALLEL_FROM) {
            return range;
        }
        for (MemorySegment s : segments) {
            if (!s.isAccessibleBy(ANOTHER_THREAD)) {
                return range;
            }
        }
        return range.parallel();
    }

    static boolean handles(StoredType from, StoredType to) {
        return isFloat16Or32(from) && isFloat16Or32(to);
    }

    private static boolean isFloat16Or32(StoredType t) {
        return t == StoredType.F32 || t == StoredType.F16 || t == StoredType.BF16;
    }

    /** Converts {@code n} elements of {@code in} (type {@code from}) into {@code out} (type {@code to}, dense). */
    static MemorySegment convert(MemorySegment in, StoredType from, StoredType to, long n, MemorySegment out) {
        tasks((n + TASK - 1) / TASK, n, in, out).forEach(task -> {
            long end = Math.min(n, (task + 1) * TASK);
            int size = (int) Math.min(CHUNK, end - task * TASK);
            float[] f = new float[size];
            short[] s = from == StoredType.F32 && to == StoredType.F32 ? null : new short[size];
            for (long at = task * TASK; at < end; at += CHUNK) {
                int len = (int) Math.min(CHUNK, end - at);
                read(in, from, at, f, s, len);
                write(out, to, at, f, s, len);
            }
        });
        return out;
    }

    /** Copies {@code in} into {@code out}, in parallel slices when it is large. */
    static MemorySegment copy(MemorySegment in, MemorySegment out) {
        long size = in.byteSize();
        long slice = 1L << 22;
        tasks((size + slice - 1) / slice, size, in, out).forEach(c -> {
            long at = c * slice;
            MemorySegment.copy(in, at, out, at, Math.min(slice, size - at));
        });
        return out;
    }

    /** Reads one byte of every 4 KiB page of {@code seg} (in parallel when it is large), so a mapped file is paged in. */
    static long touch(MemorySegment seg) {
        long size = seg.byteSize();
        long slice = 1L << 22;
        return tasks((size + slice - 1) / slice, size, seg).map(c -> {
            long acc = 0;
            long end = Math.min(size, (c + 1) * slice);
            for (long at = c * slice; at < end; at += 4096) {
                acc += seg.get(ValueLayout.JAVA_BYTE, at);
            }
            return acc;
        }).sum();
    }

    private static void read(MemorySegment in, StoredType from, long at, float[] f, short[] s, int len) {
        if (from == StoredType.F32) {
            MemorySegment.copy(in, F32, at * 4, f, 0, len);
            return;
        }
        MemorySegment.copy(in, S16, at * 2, s, 0, len);
        if (from == StoredType.F16) {
            for (int i = 0; i < len; i++) {
                f[i] = Float.float16ToFloat(s[i]);
            }
        } else {
            for (int i = 0; i < len; i++) {
                f[i] = Float.intBitsToFloat((s[i] & 0xffff) << 16);
            }
        }
    }

    private static void write(MemorySegment out, StoredType to, long at, float[] f, short[] s, int len) {
        if (to == StoredType.F32) {
            MemorySegment.copy(f, 0, out, F32, at * 4, len);
            return;
        }
        if (to == StoredType.F16) {
            for (int i = 0; i < len; i++) {
                s[i] = Float.floatToFloat16(f[i]);
            }
        } else {
            for (int i = 0; i < len; i++) {
                s[i] = Half.floatToBf16(f[i]);
            }
        }
        MemorySegment.copy(s, 0, out, S16, at * 2, len);
    }
}
