package dev.jdiffusion.checkpoint;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Half;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** The element types that occur in safetensors files, by their header names. Little-endian. */
public enum StoredType {
    F64(8), F32(4), F16(2), BF16(2), I64(8), I32(4), I16(2), I8(1), U8(1), BOOL(1), F8_E4M3(1), F8_E5M2(1);

    private static final ValueLayout.OfDouble D = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong J = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int byteSize;

    StoredType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    /** The compute/storage dtype a tensor of this type keeps without conversion, or null if it must be widened to F32. */
    public DType tensorType() {
        return switch (this) {
            case F32 -> DType.F32;
            case F16 -> DType.F16;
            case BF16 -> DType.BF16;
            default -> null;
        };
    }

    public static StoredType of(DType t) {
        return switch (t) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
    }

    /** F64, F32, F16, BF16 and the float8 types. */
    public boolean isFloatingPoint() {
        return switch (this) {
            case F64, F32, F16, BF16, F8_E4M3, F8_E5M2 -> true;
            default -> false;
        };
    }

    /** Stores {@code v} as element {@code i} of {@code seg}; for F64, F32, F16 and BF16 (rounding to nearest even). */
    public void putFloat(MemorySegment seg, long i, float v) {
        switch (this) {
            case F64 -> seg.set(D, i * 8, v);
            case F32 -> seg.set(F, i * 4, v);
            case F16 -> seg.set(S, i * 2, Half.floatToF16(v));
            case BF16 -> seg.set(S, i * 2, Half.floatToBf16(v));
            default -> throw new UnsupportedOperationException("cannot store floats as " + this);
        }
    }

    /** Element {@code i} of {@code seg} as a double (exact for every type but I64 beyond 2^53). */
    public double get(MemorySegment seg, long i) {
        return switch (this) {
            case F64 -> seg.get(D, i * 8);
            case F32 -> seg.get(F, i * 4);
            case F16 -> Float.float16ToFloat(seg.get(S, i * 2));
            case BF16 -> Float.intBitsToFloat((seg.get(S, i * 2) & 0xffff) << 16);
            case I64 -> seg.get(J, i * 8);
            case I32 -> seg.get(I, i * 4);
            case I16 -> seg.get(S, i * 2);
            case I8 -> seg.get(ValueLayout.JAVA_BYTE, i);
            case U8 -> seg.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            case BOOL -> seg.get(ValueLayout.JAVA_BYTE, i) != 0 ? 1 : 0;
            case F8_E4M3 -> e4m3(seg.get(ValueLayout.JAVA_BYTE, i) & 0xff);
            case F8_E5M2 -> e5m2(seg.get(ValueLayout.JAVA_BYTE, i) & 0xff);
        };
    }

    /** float8 e4m3 "fn": bias 7, no infinities, S.1111.111 is NaN, max 448. */
    public static double e4m3(int b) {
        int sign = (b & 0x80) != 0 ? -1 : 1;
        int e = (b >> 3) & 0xf;
        int m = b & 7;
        if (e == 15 && m == 7) {
            return Double.NaN;
        }
        double v = e == 0 ? m / 8.0 * Math.scalb(1.0, -6) : (1 + m / 8.0) * Math.scalb(1.0, e - 7);
        return sign * v;
    }

    /** float8 e5m2: bias 15, IEEE-like infinities and NaN. */
    public static double e5m2(int b) {
        int sign = (b & 0x80) != 0 ? -1 : 1;
        int e = (b >> 2) & 0x1f;
        int m = b & 3;
        if (e == 31) {
            return m == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        }
        double v = e == 0 ? m / 4.0 * Math.scalb(1.0, -14) : (1 + m / 4.0) * Math.scalb(1.0, e - 15);
        return sign * v;
    }
}
