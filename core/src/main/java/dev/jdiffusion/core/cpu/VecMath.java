package dev.jdiffusion.core.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vectorised transcendental functions for the activations and softmax, each with a scalar twin
 * that performs the same float operations in the same order (so the two agree bit for bit; tests
 * check this and compare both with float64).
 *
 * <p>{@code exp}: Cody–Waite reduction {@code x = n·ln2 + r}, a degree-7 Taylor polynomial on
 * {@code |r| ≤ ln2/2} (truncation error below 5e-9), then scaling by {@code 2^n} through the
 * exponent bits; relative error about 1 ulp. Results below {@code exp(-86.5)} (near the smallest
 * normal float) are flushed to zero, above {@code exp(88.72)} they are infinite.
 *
 * <p>{@code erfc}: the Chebyshev fit of Numerical Recipes ({@code erfcc}), fractional error below
 * 1.2e-7 everywhere, which keeps GELU accurate relative to its value even far into the negative
 * tail where {@code 1 + erf(x)} cancels.
 */
public final class VecMath {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693145751953125f;
    private static final float LN2_LO = 1.428606765330187045e-06f;
    private static final float MAGIC = 12582912f; // 1.5 * 2^23: adding and subtracting rounds to an integer
    private static final float EXP_LO = -86.5f;
    private static final float EXP_HI = 88.72f;
    private static final float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    private static final float INV_SQRT2 = 0.70710678118654752f;
    private static final float QUICK_GELU = 1.702f;
    private static final float SQRT_2_OVER_PI = 0.79788456080286536f;
    private static final float GELU_TANH_C = 0.044715f;

    private VecMath() {
    }

    /**
     * Sum of the lanes in lane order. {@code reduceLanes(ADD)} may add in any order (and differently
     * when interpreted and when compiled); this keeps results reproducible.
     */
    public static float sumLanes(FloatVector v) {
        float[] lanes = v.toArray();
        float s = 0f;
        for (float x : lanes) {
            s += x;
        }
        return s;
    }

    // ---- exp -------------------------------------------------------------------------------------

    public static FloatVector exp(FloatVector x) {
        VectorMask<Float> under = x.lt(EXP_LO);
        VectorMask<Float> over = x.compare(VectorOperators.GT, EXP_HI);
        VectorMask<Float> nan = x.test(VectorOperators.IS_NAN);
        // clamped by blends: Java's max and min (NaN, signed zeros) take several instructions each
        FloatVector xc = x.blend(EXP_LO, under).blend(EXP_HI, over);
        FloatVector n = xc.mul(LOG2E).add(MAGIC).sub(MAGIC);
        FloatVector p = expReduced(xc, n);
        IntVector ni = (IntVector) n.convert(VectorOperators.F2I, 0);
        IntVector bits = ((IntVector) p.reinterpretAsInts()).add(ni.lanewise(VectorOperators.LSHL, 23));
        FloatVector res = bits.reinterpretAsFloats();
        return res.blend(0f, under).blend(Float.POSITIVE_INFINITY, over).blend(x, nan);
    }

    /** exp(xc − n·ln 2) for n = round(xc / ln 2): Cody–Waite reduction, then a degree-7 polynomial. */
    private static FloatVector expReduced(FloatVector xc, FloatVector n) {
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), xc);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = r.fma(C7, C6);
        p = p.fma(r, FloatVector.broadcast(S, C5));
        p = p.fma(r, FloatVector.broadcast(S, C4));
        p = p.fma(r, FloatVector.broadcast(S, C3));
        p = p.fma(r, FloatVector.broadcast(S, C2));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        return p;
    }

    /**
     * {@link #exp(FloatVector)} for arguments that are at most 0 (or NaN), bit for bit, with fewer
     * operations: no overflow check, and the exponent taken from the rounding sum's low bits.
     */
    public static FloatVector expNonPositive(FloatVector x) {
        VectorMask<Float> under = x.lt(EXP_LO);
        VectorMask<Float> nan = x.test(VectorOperators.IS_NAN);
        FloatVector xc = x.blend(EXP_LO, under);
        FloatVector t = xc.mul(LOG2E).add(MAGIC);     // MAGIC + n, n in the low mantissa bits
        FloatVector n = t.sub(MAGIC);
        FloatVector p = expReduced(xc, n);
        IntVector shifted = ((IntVector) t.reinterpretAsInts()).lanewise(VectorOperators.LSHL, 23);
        FloatVector res = ((IntVector) p.reinterpretAsInts()).add(shifted).reinterpretAsFloats();
        return res.blend(0f, under).blend(x, nan);
    }

    public static float exp(float x) {
        if (Float.isNaN(x)) {
            return x;
        }
        if (x < EXP_LO) {
            return 0f;
        }
        if (x > EXP_HI) {
            return Float.POSITIVE_INFINITY;
        }
        float n = (x * LOG2E + MAGIC) - MAGIC;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        return Float.intBitsToFloat(Float.floatToRawIntBits(p) + ((int) n << 23));
    }

    // ---- sigmoid family --------------------------------------------------------------------------

    /** {@code x · sigmoid(k·x)} = {@code x / (1 + exp(-k·x))}: SiLU for k = 1, QuickGELU for k = 1.702. */
    public static FloatVector xSigmoid(FloatVector x, float k) {
        FloatVector e = exp(x.mul(-k));
        return x.div(e.add(1f));
    }

    public static float xSigmoid(float x, float k) {
        float e = exp(x * -k);
        return x / (e + 1f);
    }

    public static FloatVector silu(FloatVector x) {
        return xSigmoid(x, 1f);
    }

    public static float silu(float x) {
        return xSigmoid(x, 1f);
    }

    public static FloatVector quickGelu(FloatVector x) {
        return xSigmoid(x, QUICK_GELU);
    }

    public static float quickGelu(float x) {
        return xSigmoid(x, QUICK_GELU);
    }

    /** GELU, tanh form: {@code 0.5x(1 + tanh(u))} written as {@code x · sigmoid(2u)}, which does not cancel. */
    public static FloatVector geluTanh(FloatVector x) {
        FloatVector x3 = x.mul(x).mul(x);
        FloatVector u = x3.fma(FloatVector.broadcast(S, GELU_TANH_C), x).mul(SQRT_2_OVER_PI);
        FloatVector e = exp(u.mul(-2f));
        return x.div(e.add(1f));
    }

    public static float geluTanh(float x) {
        float x3 = x * x * x;
        float u = Math.fma(x3, GELU_TANH_C, x) * SQRT_2_OVER_PI;
        float e = exp(u * -2f);
        return x / (e + 1f);
    }

    // ---- GELU (erf) ------------------------------------------------------------------------------

    /** GELU, erf form: {@code x · Φ(x)} with {@code Φ(x) = erfc(-x/√2)/2}. */
    public static FloatVector gelu(FloatVector x) {
        FloatVector z = x.abs().mul(INV_SQRT2);
        FloatVector t = z.fma(0.5f, 1f);
        t = FloatVector.broadcast(S, 1f).div(t);
        FloatVector p = t.fma(0.17087277f, -0.82215223f);
        p = p.fma(t, FloatVector.broadcast(S, 1.48851587f));
        p = p.fma(t, FloatVector.broadcast(S, -1.13520398f));
        p = p.fma(t, FloatVector.broadcast(S, 0.27886807f));
        p = p.fma(t, FloatVector.broadcast(S, -0.18628806f));
        p = p.fma(t, FloatVector.broadcast(S, 0.09678418f));
        p = p.fma(t, FloatVector.broadcast(S, 0.37409196f));
        p = p.fma(t, FloatVector.broadcast(S, 1.00002368f));
        p = p.fma(t, FloatVector.broadcast(S, -1.26551223f));
        FloatVector negHalfX2 = x.mul(x).mul(-0.5f);
        FloatVector halfErfc = t.mul(exp(negHalfX2.add(p))).mul(0.5f);
        FloatVector phi = halfErfc.neg().add(1f).blend(halfErfc, x.lt(0f));
        return x.mul(phi);
    }

    public static float gelu(float x) {
        float z = Math.abs(x) * INV_SQRT2;
        float t = Math.fma(z, 0.5f, 1f);
        t = 1f / t;
        float p = Math.fma(t, 0.17087277f, -0.82215223f);
        p = Math.fma(p, t, 1.48851587f);
        p = Math.fma(p, t, -1.13520398f);
        p = Math.fma(p, t, 0.27886807f);
        p = Math.fma(p, t, -0.18628806f);
        p = Math.fma(p, t, 0.09678418f);
        p = Math.fma(p, t, 0.37409196f);
        p = Math.fma(p, t, 1.00002368f);
        p = Math.fma(p, t, -1.26551223f);
        float negHalfX2 = x * x * -0.5f;
        float halfErfc = t * exp(negHalfX2 + p) * 0.5f;
        float phi = x < 0f ? halfErfc : 1f - halfErfc;
        return x * phi;
    }
}
