package dev.jdiffusion.samplers.rng;

/**
 * The float32 log and sin/cos of avx_mathfun (Cephes polynomials), which torch's AVX2
 * {@code normal_fill} kernel uses; emulated lane by lane with the same constants and operation
 * order. The multiply-adds that the compiler contracts into FMAs in torch's build (the log
 * polynomial, and the last step of the sine polynomial) are fused here too.
 */
final class AvxMathFun {
    private AvxMathFun() {
    }

    private static final float SQRTHF = 0.707106781186547524f;
    private static final float[] LOG_P = {7.0376836292E-2f, -1.1514610310E-1f, 1.1676998740E-1f, -1.2420140846E-1f,
        1.4249322787E-1f, -1.6668057665E-1f, 2.0000714765E-1f, -2.4999993993E-1f, 3.3333331174E-1f};
    private static final float LOG_Q1 = -2.12194440e-4f;
    private static final float LOG_Q2 = 0.693359375f;
    private static final float MIN_NORM_POS = Float.intBitsToFloat(0x00800000);

    static float log(float v) {
        if (!(v > 0)) {
            return Float.NaN;
        }
        float x = Math.max(v, MIN_NORM_POS);
        int bits = Float.floatToRawIntBits(x);
        int exponent = (bits >>> 23) - 0x7f;
        x = Float.intBitsToFloat((bits & 0x807fffff) | Float.floatToRawIntBits(0.5f));
        float e = exponent + 1f;
        boolean small = x < SQRTHF;
        float tmp = small ? x : 0f;
        x = x - 1f;
        e = e - (small ? 1f : 0f);
        x = x + tmp;
        float z = x * x;
        float y = LOG_P[0];
        for (int i = 1; i < LOG_P.length; i++) {
            y = Math.fma(y, x, LOG_P[i]);
        }
        y = y * x;
        y = y * z;
        y = Math.fma(e, LOG_Q1, y);
        y = Math.fma(z, -0.5f, y);
        x = x + y;
        x = Math.fma(e, LOG_Q2, x);
        return x;
    }

    private static final float FOPI = 1.27323954473516f;
    private static final float DP1 = -0.78515625f;
    private static final float DP2 = -2.4187564849853515625e-4f;
    private static final float DP3 = -3.77489497744594108e-8f;
    private static final float SIN_P0 = -1.9515295891E-4f;
    private static final float SIN_P1 = 8.3321608736E-3f;
    private static final float SIN_P2 = -1.6666654611E-1f;
    private static final float COS_P0 = 2.443315711809948E-005f;
    private static final float COS_P1 = -1.388731625493765E-003f;
    private static final float COS_P2 = 4.166664568298827E-002f;

    /** {sin(v), cos(v)}. */
    static float[] sincos(float v) {
        int signSin = Float.floatToRawIntBits(v) & 0x80000000;
        float x = Math.abs(v);
        float y = x * FOPI;
        int j = (int) y;
        j = (j + 1) & ~1;
        y = j;
        int swapSignSin = (j & 4) << 29;
        boolean polyIsSin = (j & 2) == 0;
        x = x + y * DP1;
        x = x + y * DP2;
        x = x + y * DP3;
        int signCos = (~(j - 2) & 4) << 29;
        signSin ^= swapSignSin;
        float z = x * x;
        float c = COS_P0;
        c = c * z + COS_P1;
        c = c * z + COS_P2;
        c = c * z;
        c = c * z;
        c = c - z * 0.5f;
        c = c + 1f;
        float s = SIN_P0;
        s = s * z + SIN_P1;
        s = s * z + SIN_P2;
        s = s * z;
        s = Math.fma(s, x, x);
        float sin = polyIsSin ? s : c;
        float cos = polyIsSin ? c : s;
        sin = Float.intBitsToFloat(Float.floatToRawIntBits(sin) ^ signSin);
        cos = Float.intBitsToFloat(Float.floatToRawIntBits(cos) ^ signCos);
        return new float[] {sin, cos};
    }
}
