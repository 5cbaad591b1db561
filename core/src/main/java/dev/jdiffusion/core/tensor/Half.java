package dev.jdiffusion.core.tensor;

/** Conversions between float32 and the 16-bit storage formats (IEEE binary16 and bfloat16). */
public final class Half {
    private Half() {
    }

    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** Round to nearest even, as PyTorch's {@code .half()} does. */
    public static short floatToF16(float value) {
        return Float.floatToFloat16(value);
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round to nearest even, as PyTorch's {@code .bfloat16()} does; NaN stays a quiet NaN. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** Converts one stored 16-bit value of the given type to float. */
    public static float toFloat(DType type, short bits) {
        return type == DType.BF16 ? bf16ToFloat(bits) : f16ToFloat(bits);
    }

    /** Converts a float to the given 16-bit storage type. */
    public static short fromFloat(DType type, float value) {
        return type == DType.BF16 ? floatToBf16(value) : floatToF16(value);
    }
}
