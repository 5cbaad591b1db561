package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jdiffusion.samplers.rng.PhiloxGenerator;
import dev.jdiffusion.samplers.rng.TorchCpuGenerator;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class SeededNoiseTest {
    @Test
    void theTorchAndPhiloxStreamsContinueTheirGeneratorsDrawAfterDraw() {
        int n = 4 * 8 * 8;
        TorchCpuGenerator torch = new TorchCpuGenerator(1234);
        PhiloxGenerator philox = new PhiloxGenerator(1234);
        SeededNoise t = SeededNoise.of(SeededNoise.Generator.TORCH_CPU, 1234, n);
        SeededNoise p = SeededNoise.of(SeededNoise.Generator.PHILOX, 1234, n);
        for (int draw = 0; draw < 3; draw++) {
            assertArrayEquals(widen(torch.randn(n)), t.next(), "torch draw " + draw);
            assertArrayEquals(widen(philox.randn(n)), p.next(1, 0.5), "philox draw " + draw);
        }
    }

    @Test
    void theOwnStreamIsReproducibleStandardNormalAndSeedDependent() {
        int n = 100_001;
        double[] a = SeededNoise.of(SeededNoise.Generator.OWN, 42, n).next();
        double[] b = SeededNoise.of(SeededNoise.Generator.OWN, 42, n).next();
        double[] c = SeededNoise.of(SeededNoise.Generator.OWN, 43, n).next();
        assertArrayEquals(a, b);
        assertFalse(Arrays.equals(a, c));
        double mean = Arrays.stream(a).average().orElseThrow();
        double var = Arrays.stream(a).map(v -> (v - mean) * (v - mean)).sum() / (n - 1);
        // standard errors: 0.003 for the mean, 0.0045 for the variance
        assertEquals(0, mean, 0.015);
        assertEquals(1, var, 0.025);
        SeededNoise s = SeededNoise.of(SeededNoise.Generator.OWN, 42, 8);
        assertFalse(Arrays.equals(s.next(), s.next()), "successive draws differ");
    }

    @Test
    void generatorsAreFoundByTheNamesUsersKnowAndBadInputIsRejected() {
        assertEquals(SeededNoise.Generator.PHILOX, SeededNoise.Generator.named("NV"));
        assertEquals(SeededNoise.Generator.TORCH_CPU, SeededNoise.Generator.named("cpu"));
        assertEquals(SeededNoise.Generator.OWN, SeededNoise.Generator.named("own"));
        assertThrows(IllegalArgumentException.class, () -> SeededNoise.Generator.named("xorshift"));
        assertThrows(IllegalArgumentException.class, () -> SeededNoise.of(SeededNoise.Generator.OWN, 1, 0));
    }

    private static double[] widen(float[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = v[i];
        }
        return r;
    }
}
