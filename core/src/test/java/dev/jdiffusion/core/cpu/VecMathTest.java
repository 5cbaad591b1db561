package dev.jdiffusion.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.DoubleUnaryOperator;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/** The vector functions agree bit for bit with their scalar twins, and the twins with float64. */
class VecMathTest {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    interface VecFn {
        FloatVector apply(FloatVector v);
    }

    interface ScalarFn {
        float apply(float v);
    }

    private static void assertTwins(VecFn vec, ScalarFn scalar, float from, float to, String name) {
        int n = 200_000;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = from + (to - from) * i / (n - 1);
        }
        float[] y = new float[n];
        for (int i = 0; i + S.length() <= n; i += S.length()) {
            vec.apply(FloatVector.fromArray(S, x, i)).intoArray(y, i);
        }
        for (int i = 0; i + S.length() <= n; i++) {
            assertEquals(Float.floatToIntBits(scalar.apply(x[i])), Float.floatToIntBits(y[i]),
                    name + "(" + x[i] + "): vector " + y[i] + " vs scalar " + scalar.apply(x[i]));
        }
    }

    @Test
    void vectorAndScalarTwinsAgreeBitForBit() {
        assertTwins(VecMath::exp, VecMath::exp, -100f, 100f, "exp");
        assertTwins(VecMath::expNonPositive, VecMath::exp, -100f, 0f, "expNonPositive");
        assertTwins(VecMath::silu, VecMath::silu, -100f, 100f, "silu");
        assertTwins(VecMath::quickGelu, VecMath::quickGelu, -60f, 60f, "quickGelu");
        assertTwins(VecMath::gelu, VecMath::gelu, -15f, 15f, "gelu");
        assertTwins(VecMath::geluTanh, VecMath::geluTanh, -15f, 15f, "geluTanh");
    }

    private static double maxRelError(ScalarFn f, DoubleUnaryOperator ref, float from, float to) {
        double worst = 0;
        int n = 1_000_000;
        for (int i = 0; i < n; i++) {
            float x = from + (to - from) * i / (n - 1);
            double r = ref.applyAsDouble(x);
            worst = Math.max(worst, Math.abs(f.apply(x) - r) / Math.abs(r));
        }
        return worst;
    }

    @Test
    void expIsWithinTwoUlp() {
        double err = maxRelError(VecMath::exp, Math::exp, -86f, 88f);
        assertTrue(err < 2 * 0x1p-23, "exp max relative error " + err);
    }

    @Test
    void expNonPositiveEdges() {
        float[] edges = {Float.NEGATIVE_INFINITY, Float.NaN, -0f, 0f, -Float.MIN_VALUE, -86.5f, -86.6f, -87.5f, -1e30f};
        // every edge in some lane, however narrow the vectors
        float[] x = new float[Gemm.roundUp(edges.length, S.length())];
        for (int i = 0; i < x.length; i++) {
            x[i] = edges[i % edges.length];
        }
        for (int o = 0; o < x.length; o += S.length()) {
            float[] y = VecMath.expNonPositive(FloatVector.fromArray(S, x, o)).toArray();
            for (int i = 0; i < y.length; i++) {
                assertEquals(Float.floatToIntBits(VecMath.exp(x[o + i])), Float.floatToIntBits(y[i]), "exp(" + x[o + i] + ")");
            }
        }
    }

    @Test
    void expEdges() {
        assertEquals(0f, VecMath.exp(-200f));
        assertEquals(Float.POSITIVE_INFINITY, VecMath.exp(200f));
        assertTrue(Float.isNaN(VecMath.exp(Float.NaN)));
        assertEquals(1f, VecMath.exp(0f));
        assertEquals(0f, VecMath.exp(Float.NEGATIVE_INFINITY));
        float[] edge = new float[S.length()];
        edge[0] = Float.NaN;
        edge[1] = Float.NEGATIVE_INFINITY;
        edge[2] = Float.POSITIVE_INFINITY;
        float[] out = VecMath.exp(FloatVector.fromArray(S, edge, 0)).toArray();
        assertTrue(Float.isNaN(out[0]));
        assertEquals(0f, out[1]);
        assertEquals(Float.POSITIVE_INFINITY, out[2]);
    }

    @Test
    void sumLanesAddsInLaneOrder() {
        float[] lanes = new float[S.length()];
        lanes[0] = 1e8f;
        lanes[1] = 1f;
        lanes[2] = -1e8f;
        float expected = 0f;
        for (float v : lanes) {
            expected += v;
        }
        assertEquals(expected, VecMath.sumLanes(FloatVector.fromArray(S, lanes, 0)));
    }
}
