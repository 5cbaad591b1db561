package dev.jdiffusion.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StoredTensorCastTest {
    private static final float[] SPECIAL = {0f, -0f, 1f, -1f, 65504f, 65520f, 65519.99f, 1e-8f, -1e-8f, 5.96e-8f,
        2.98e-8f, 6.1e-5f, 3.4e38f, Float.MIN_VALUE, Float.MAX_VALUE, Float.POSITIVE_INFINITY,
        Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7fc00001), Float.intBitsToFloat(0xff800001),
        1.00048828125f /* f16 tie */, 1.0009765625f, Float.intBitsToFloat(0x3f808000) /* bf16 tie, even */,
        Float.intBitsToFloat(0x3f818000) /* bf16 tie, odd */, Float.intBitsToFloat(0x7f7fffff)};

    /** n elements of the given type: the special values first, then random bit patterns. */
    private static StoredTensor sample(StoredType type, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        MemorySegment seg = MemorySegment.ofArray(new byte[Math.toIntExact(n * type.byteSize())]);
        for (int i = 0; i < n; i++) {
            float v = i < SPECIAL.length ? SPECIAL[i]
                    : (i % 3 == 0 ? Float.intBitsToFloat(r.nextInt()) : (float) r.nextGaussian() * 0.02f);
            type.putFloat(seg, i, v);
        }
        return StoredTensor.lazy(type, new long[] {n}, () -> seg);
    }

    @Test
    void bulkCastsMatchTheElementwiseConversionBitForBit() {
        StoredType[] types = {StoredType.F32, StoredType.F16, StoredType.BF16};
        // one size below the parallel threshold and one above it, neither a multiple of the chunk
        for (int n : new int[] {40_001, 2_500_003}) {
            for (StoredType from : types) {
                StoredTensor in = sample(from, n, n * 31L + from.ordinal());
                MemorySegment src = in.bytes();
                for (StoredType to : types) {
                    StoredTensor cast = in.castTo(to);
                    if (from == to) {
                        assertSame(in, cast);
                        continue;
                    }
                    MemorySegment got = cast.bytes();
                    assertEquals(n * to.byteSize(), got.byteSize());
                    MemorySegment want = MemorySegment.ofArray(new byte[Math.toIntExact(n * to.byteSize())]);
                    for (long i = 0; i < n; i++) {
                        to.putFloat(want, i, (float) from.get(src, i));
                    }
                    long mismatch = want.mismatch(got);
                    assertEquals(-1, mismatch, from + " -> " + to + ": first difference at byte " + mismatch);
                }
            }
        }
    }

    @Test
    void materialiseCopiesOrConvertsIntoMemoryOfItsOwn() {
        for (int n : new int[] {1000, 2_500_003}) {
            java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofAuto();
            StoredTensor f16 = sample(StoredType.F16, n, 7);
            MemorySegment view = f16.bytes();
            MemorySegment own = f16.materialise(StoredType.F16, arena);
            assertEquals(-1, view.mismatch(own));
            byte first = view.get(ValueLayout.JAVA_BYTE, 0);
            byte last = view.get(ValueLayout.JAVA_BYTE, 2L * n - 1);
            view.set(ValueLayout.JAVA_BYTE, 0, (byte) ~first);
            view.set(ValueLayout.JAVA_BYTE, 2L * n - 1, (byte) ~last);
            assertEquals(first, own.get(ValueLayout.JAVA_BYTE, 0), "the copy is independent of the source");
            assertEquals(last, own.get(ValueLayout.JAVA_BYTE, 2L * n - 1), "the copy is independent of the source");
            StoredTensor f32 = sample(StoredType.F32, n, 8);
            assertEquals(-1, f32.castTo(StoredType.F16).bytes().mismatch(f32.materialise(StoredType.F16, arena)));
            StoredTensor ints = StoredTensor.lazy(StoredType.I64, new long[] {3},
                    () -> MemorySegment.ofArray(new long[] {1, 2, 3}));
            assertEquals(24, ints.materialise(StoredType.F16, arena).byteSize(), "integers keep their type");
        }
    }

    @Test
    void loadUsesTheMappedFileWhereTheTypeMatchesAndConvertsOtherwise(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws java.io.IOException {
        java.nio.file.Path file = dir.resolve("w.safetensors");
        java.util.Map<String, StoredTensor> w = new java.util.LinkedHashMap<>();
        w.put("half", sample(StoredType.F16, 300_000, 1));
        w.put("single", sample(StoredType.F32, 300_000, 2));
        dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter.writeStored(file, w, java.util.Map.of());
        try (var f = dev.jdiffusion.checkpoint.safetensors.SafetensorsFile.open(file)) {
            java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined();
            MemorySegment half = f.tensor("half").load(StoredType.F16, arena);
            assertEquals(true, half.isMapped(), "a view of the mapping");
            assertEquals(f.bytes("half").address(), half.address());
            MemorySegment single = f.tensor("single").load(StoredType.F16, arena);
            assertEquals(false, single.isMapped(), "converted into fresh memory");
            assertEquals(true, single.scope().equals(arena.scope()), "from the caller's allocator");
            assertEquals(-1, single.mismatch(w.get("single").castTo(StoredType.F16).bytes()));
            arena.close();
            assertEquals(false, single.scope().isAlive());
            assertEquals(-1, f.bytes("half").mismatch(w.get("half").bytes()), "the view outlives the arena");
        }
    }

    @Test
    void loadAllKeepsTheFileOrderAndLoadsEveryTensor(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws java.io.IOException {
        java.nio.file.Path file = dir.resolve("all.safetensors");
        java.util.Map<String, StoredTensor> w = new java.util.LinkedHashMap<>();
        for (int i = 0; i < 40; i++) {
            StoredType type = i % 3 == 0 ? StoredType.F32 : i % 3 == 1 ? StoredType.F16 : StoredType.BF16;
            w.put("t" + (39 - i), sample(type, 1000 + 5000 * i, i));
        }
        w.put("ids", StoredTensor.lazy(StoredType.I64, new long[] {3}, () -> MemorySegment.ofArray(new long[] {1, 2, 3})));
        dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter.writeStored(file, w, java.util.Map.of());
        try (var f = Checkpoints.open(file); java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            java.util.Map<String, MemorySegment> all = f.loadAll(StoredType.F16, arena);
            assertEquals(new java.util.ArrayList<>(f.tensors().keySet()), new java.util.ArrayList<>(all.keySet()));
            for (var e : w.entrySet()) {
                MemorySegment want = e.getValue().castTo(StoredType.F16).bytes();
                assertEquals(-1, want.mismatch(all.get(e.getKey())), e.getKey());
            }
        }
    }
}
