package dev.jdiffusion.core.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * IEEE half precision to and from float32 on whole vectors (the Vector API has no such conversion):
 * by integer arithmetic on the bits, exact both ways, rounding to nearest even as
 * {@link Float#floatToFloat16} does (any NaN becomes the quiet NaN 0x7e00 with its sign), from Java
 * arrays or straight from a weight's memory segment.
 */
public final class HalfVectors {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class,
            VectorShape.forBitSize(F.vectorBitSize() / 2));

    private HalfVectors() {
    }

    /** dst[dstOff + i] = the half src[srcOff + i] as a float, for i in [0, n). */
    public static void toFloat(short[] src, int srcOff, float[] dst, int dstOff, int n) {
        int i = 0;
        int bound = n - n % F.length();
        for (; i < bound; i += F.length()) {
            widen(ShortVector.fromArray(H, src, srcOff + i)).intoArray(dst, dstOff + i);
        }
        if (i < n) {
            widen(ShortVector.fromArray(H, src, srcOff + i, H.indexInRange(i, n))).intoArray(dst, dstOff + i, F.indexInRange(i, n));
        }
    }

    /**
     * dst[dstOff + i] = the 16-bit float (F16 when {@code bf16} is false, else BF16) at element
     * {@code elem + i} of a little-endian segment (a mapped checkpoint, say), for i in [0, n).
     */
    public static void toFloat(MemorySegment src, long elem, boolean bf16, float[] dst, int dstOff, int n) {
        int i = 0;
        int bound = n - n % F.length();
        for (; i < bound; i += F.length()) {
            ShortVector h = ShortVector.fromMemorySegment(H, src, (elem + i) * 2, ByteOrder.LITTLE_ENDIAN);
            (bf16 ? widenBf16(h) : widen(h)).intoArray(dst, dstOff + i);
        }
        if (i < n) {
            VectorMask<Short> m = H.indexInRange(i, n);
            ShortVector h = ShortVector.fromMemorySegment(H, src, (elem + i) * 2, ByteOrder.LITTLE_ENDIAN, m);
            (bf16 ? widenBf16(h) : widen(h)).intoArray(dst, dstOff + i, F.indexInRange(i, n));
        }
    }

    /** dst[dstOff + i] = src[srcOff + i] as a half, rounded to nearest even, for i in [0, n). */
    public static void fromFloat(float[] src, int srcOff, short[] dst, int dstOff, int n) {
        int i = 0;
        int bound = n - n % F.length();
        for (; i < bound; i += F.length()) {
            narrow(FloatVector.fromArray(F, src, srcOff + i)).intoArray(dst, dstOff + i);
        }
        if (i < n) {
            narrow(FloatVector.fromArray(F, src, srcOff + i, F.indexInRange(i, n))).intoArray(dst, dstOff + i, H.indexInRange(i, n));
        }
    }

    private static FloatVector widen(ShortVector h) {
        IntVector x = (IntVector) h.convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
        IntVector sign = x.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        IntVector em = x.and(0x7fff);
        IntVector shifted = em.lanewise(VectorOperators.LSHL, 13);
        IntVector normal = shifted.add((127 - 15) << 23);
        IntVector special = shifted.or(0x7f800000);
        IntVector subnormal = ((FloatVector) em.convert(VectorOperators.I2F, 0)).mul(0x1p-24f).reinterpretAsInts();
        IntVector bits = normal.blend(special, em.compare(VectorOperators.GE, 0x7c00))
                .blend(subnormal, em.compare(VectorOperators.LT, 0x400));
        return bits.or(sign).reinterpretAsFloats();
    }

    private static FloatVector widenBf16(ShortVector h) {
        IntVector x = (IntVector) h.convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
        return x.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static ShortVector narrow(FloatVector f) {
        IntVector u = f.reinterpretAsInts();
        IntVector sign = u.and(0x80000000);
        u = u.and(0x7fffffff);
        // too large for a half: infinity, or the quiet NaN
        IntVector big = IntVector.broadcast(I, 0x7c00).blend(0x7e00, u.compare(VectorOperators.GT, 0x7f800000));
        // below the smallest normal half: let the float adder round into a subnormal's bits
        IntVector magic = IntVector.broadcast(I, 126 << 23);
        IntVector small = u.reinterpretAsFloats().add(magic.reinterpretAsFloats()).reinterpretAsInts().sub(magic);
        // normal: rebias the exponent, round to nearest even, drop 13 mantissa bits
        IntVector odd = u.lanewise(VectorOperators.LSHR, 13).and(1);
        IntVector normal = u.add(((15 - 127) << 23) + 0xfff).add(odd).lanewise(VectorOperators.LSHR, 13);
        IntVector o = normal.blend(small, u.compare(VectorOperators.LT, 113 << 23))
                .blend(big, u.compare(VectorOperators.GE, (127 + 16) << 23));
        o = o.or(sign.lanewise(VectorOperators.LSHR, 16));
        return (ShortVector) o.convertShape(VectorOperators.I2S, H, 0);
    }
}
