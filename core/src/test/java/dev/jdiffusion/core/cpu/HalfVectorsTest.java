package dev.jdiffusion.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.jdiffusion.core.tensor.Half;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class HalfVectorsTest {
    @Test
    void everyHalfWidensExactly() {
        int n = 65536 + 5; // a tail too
        short[] halves = new short[n + 1];
        for (int i = 0; i < n; i++) {
            halves[1 + i] = (short) i;
        }
        float[] out = new float[n + 3];
        HalfVectors.toFloat(halves, 1, out, 3, n);
        for (int i = 0; i < n; i++) {
            float want = Float.float16ToFloat((short) i);
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[3 + i]),
                    Float.isNaN(want) ? 0x7fffffff : 0, "half " + Integer.toHexString(i & 0xffff));
        }
    }

    @Test
    void everyHalfAndBfloat16WidensExactlyFromALittleEndianSegment() {
        int n = 65536 + 5;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(2L * (n + 1));
            for (int i = 0; i < n; i++) {
                seg.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2L * (1 + i), (short) i);
            }
            float[] out = new float[n + 3];
            HalfVectors.toFloat(seg, 1, false, out, 3, n);
            for (int i = 0; i < n; i++) {
                float want = Float.float16ToFloat((short) i);
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[3 + i]),
                        Float.isNaN(want) ? 0x7fffffff : 0, "half " + Integer.toHexString(i & 0xffff));
            }
            HalfVectors.toFloat(seg, 1, true, out, 3, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Half.bf16ToFloat((short) i), out[3 + i], 0f, "bfloat16 " + Integer.toHexString(i & 0xffff));
            }
        }
    }

    @Test
    void floatsNarrowToTheNearestEvenHalfAsFloatFloatToFloat16Does() {
        SplittableRandom r = new SplittableRandom(5);
        int n = 1_000_003;
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = switch (i % 5) {
                case 0 -> Float.intBitsToFloat(r.nextInt()); // every exponent, NaNs and infinities included
                case 1 -> (float) (r.nextGaussian() * 0.02);
                case 2 -> (float) (r.nextGaussian() * 1e-5); // subnormal halves
                case 3 -> Float.float16ToFloat((short) r.nextInt(65536)) + Math.ulp(1f) * (r.nextInt(3) - 1);
                default -> (float) (r.nextGaussian() * 70000); // overflow to infinity
            };
        }
        f[0] = 65504f + 16f; // rounds to the largest half
        f[1] = 65520f; // rounds to infinity
        f[2] = 0x1p-25f; // ties to zero
        f[3] = 0x1.8p-24f; // ties to even
        f[4] = -0f;
        short[] halves = new short[n + 2];
        HalfVectors.fromFloat(f, 0, halves, 2, n);
        for (int i = 0; i < n; i++) {
            short want = Float.floatToFloat16(f[i]);
            short got = halves[2 + i];
            if (Float.isNaN(f[i])) {
                assertEquals((short) (want & 0x8000 | 0x7e00), got, "NaN " + Integer.toHexString(Float.floatToRawIntBits(f[i])));
            } else {
                assertEquals(want, got, "float " + f[i] + " (" + Integer.toHexString(Float.floatToRawIntBits(f[i])) + ")");
            }
        }
    }
}
