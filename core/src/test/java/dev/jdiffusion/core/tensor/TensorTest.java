package dev.jdiffusion.core.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class TensorTest {

    @Test
    void viewsShareStorage() {
        float[] data = new float[24];
        for (int i = 0; i < 24; i++) {
            data[i] = i;
        }
        Tensor t = Tensor.of(data, 2, 3, 4);
        Tensor r = t.reshape(6, -1);
        assertArrayEquals(new int[] {6, 4}, r.shape());
        Tensor s = t.slice(1, 2);
        assertArrayEquals(new int[] {1, 3, 4}, s.shape());
        assertEquals(12f, s.getFloat(0));
        Tensor sel = t.select(1).select(2);
        assertArrayEquals(new int[] {4}, sel.shape());
        assertArrayEquals(new float[] {20, 21, 22, 23}, sel.toFloatArray());
        data[21] = -1;
        assertEquals(-1f, sel.getFloat(1));
        assertTrue(!s.isOwner() && t.isOwner());
    }

    @Test
    void halfConversionsRoundToNearestEven() {
        // 1 + 2^-11 is halfway between two F16 values: ties to even (1.0)
        assertEquals(1f, Half.f16ToFloat(Half.floatToF16(1f + 0x1p-11f)));
        assertEquals(1f + 0x1p-9f, Half.f16ToFloat(Half.floatToF16(1f + 0x1p-9f + 0x1p-11f)));
        assertEquals(65504f, Half.f16ToFloat(Half.floatToF16(65504f)));
        assertEquals(Float.POSITIVE_INFINITY, Half.f16ToFloat(Half.floatToF16(70000f)));
        // bfloat16 keeps 8 bits of mantissa
        assertEquals(1f, Half.bf16ToFloat(Half.floatToBf16(1f + 0x1p-8f)));
        assertEquals(1f + 0x1p-6f, Half.bf16ToFloat(Half.floatToBf16(1f + 0x1p-7f + 0x1p-8f)));
        assertEquals(3e38f, Half.bf16ToFloat(Half.floatToBf16(3e38f)), 3e38f * 0x1p-8f);
        assertTrue(Float.isNaN(Half.bf16ToFloat(Half.floatToBf16(Float.NaN))));
        assertEquals(-0f, Half.bf16ToFloat(Half.floatToBf16(-0f)));
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = Half.bf16ToFloat((short) bits);
            if (!Float.isNaN(f)) {
                assertEquals((short) bits, Half.floatToBf16(f), "bf16 round trip of " + Integer.toHexString(bits));
            }
        }
    }

    @Test
    void halfTensorsStayHalfAndReadAsFloat() {
        float[] v = {0.5f, -2f, 3.14159f, 1e-3f};
        Tensor h = Tensor.ofHalf(v, DType.F16, 2, 2);
        assertEquals(8, h.storage().byteSize());
        assertEquals(DType.F16, h.dtype());
        assertEquals(Half.f16ToFloat(Half.floatToF16(3.14159f)), h.getFloat(2));
        Tensor f = h.to(DType.F32);
        assertArrayEquals(h.toFloatArray(), f.toFloatArray());
    }

    @Test
    void wrapsNativeLittleEndianSegments() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(12);
            ValueLayout.OfFloat le = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
            seg.set(le, 0, 1.5f);
            seg.set(le, 4, -2f);
            seg.set(le, 8, 7f);
            Tensor t = Tensor.wrap(seg, DType.F32, 3);
            assertArrayEquals(new float[] {1.5f, -2f, 7f}, t.toFloatArray());
            assertEquals(-2f, t.slice(1, 3).getFloat(0));
        }
    }

    @Test
    void badShapesAreRejectedWithTheShape() {
        ShapeException e = assertThrows(ShapeException.class, () -> Tensor.of(new float[5], 2, 3));
        assertTrue(e.getMessage().contains("[2, 3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> Tensor.zeros(2, 3).slice(1, 4));
        assertTrue(e.getMessage().contains("[2, 3]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> Tensor.zeros(2, 3).reshape(-1, -1));
        assertTrue(e.getMessage().contains("-1"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> Tensor.wrap(MemorySegment.ofArray(new byte[10]), DType.F32, 3));
        assertTrue(e.getMessage().contains("[3]") && e.getMessage().contains("10"), e.getMessage());
    }
}
