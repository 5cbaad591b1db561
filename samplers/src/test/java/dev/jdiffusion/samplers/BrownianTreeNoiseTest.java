package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class BrownianTreeNoiseTest {
    private static final int N = 20_000;

    @Test
    void incrementsAreStandardNormalAndIndependent() {
        BrownianTreeNoise tree = new BrownianTreeNoise(42, N, 0.03, 14.6);
        double[] a = tree.next(14.6, 7.0);
        double[] b = tree.next(7.0, 0.5);
        double[] c = tree.next(0.5, 0.031);
        for (double[] z : new double[][] {a, b, c}) {
            double mean = Arrays.stream(z).average().orElseThrow();
            double var = Arrays.stream(z).map(v -> v * v).sum() / N;
            assertEquals(0, mean, 0.03);
            assertEquals(1, var, 0.04);
        }
        assertEquals(0, correlation(a, b), 0.03);
        assertEquals(0, correlation(b, c), 0.03);
    }

    @Test
    void theSamePathIsCutFinerWhenStepsAreAdded() {
        BrownianTreeNoise tree = new BrownianTreeNoise(7, N, 0.03, 14.6);
        double[] whole = tree.next(10.0, 2.0);
        double[] first = tree.next(10.0, 5.0);
        double[] second = tree.next(5.0, 2.0);
        // W(2) - W(10) = (W(5) - W(10)) + (W(2) - W(5))
        double[] sum = new double[N];
        for (int i = 0; i < N; i++) {
            sum[i] = (first[i] * Math.sqrt(5) + second[i] * Math.sqrt(3)) / Math.sqrt(8);
        }
        assertArrayEquals(whole, sum, 1e-9);
        // and it is a fixed function of the seed
        assertArrayEquals(whole, new BrownianTreeNoise(7, N, 0.03, 14.6).next(10.0, 2.0));
        assertTrue(correlation(whole, new BrownianTreeNoise(8, N, 0.03, 14.6).next(10.0, 2.0)) < 0.05);
    }

    @Test
    void anSdeSamplerWithTheTreeChangesLittleWhenTheStepCountChanges() {
        double[] mu = new double[N];
        Arrays.fill(mu, 0.3);
        ToyDenoiser model = ToyDenoiser.gaussian(mu, 0.5);
        double[] x = new BrownianTreeNoise(1, N, 0.03, 14.6).next(14.6, 0.03); // any unit noise
        for (int i = 0; i < N; i++) {
            x[i] = x[i] * 14.6;
        }
        double[] fine = run(model, x, 200);
        double[] coarse = run(model, x, 100);
        double[] independent = new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT).sample(model, x,
                Schedules.karras(100, 0.03, 14.6, 7), new BrownianTreeNoise(99, N, 0.03, 14.6), StepListener.NONE);
        double sameTree = rms(fine, coarse);
        double otherTree = rms(fine, independent);
        assertTrue(sameTree < 0.25 * otherTree, "same path: " + sameTree + ", other path: " + otherTree);
    }

    @Test
    void requestsOutsideTheTreeAreRefused() {
        BrownianTreeNoise tree = new BrownianTreeNoise(1, 4, 0.03, 14.6);
        assertThrows(IllegalArgumentException.class, () -> tree.next(20, 10));
        assertThrows(IllegalArgumentException.class, () -> tree.next(1, 1));
        assertThrows(IllegalArgumentException.class, () -> new BrownianTreeNoise(1, 4, 1, 1));
    }

    private static double[] run(ToyDenoiser model, double[] x, int steps) {
        return new DpmPp2mSde(DpmPp2mSde.SolverType.MIDPOINT).sample(model, x, Schedules.karras(steps, 0.03, 14.6, 7),
                new BrownianTreeNoise(5, N, 0.03, 14.6), StepListener.NONE);
    }

    private static double rms(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (a[i] - b[i]) * (a[i] - b[i]);
        }
        return Math.sqrt(s / a.length);
    }

    private static double correlation(double[] a, double[] b) {
        double ab = 0;
        double aa = 0;
        double bb = 0;
        for (int i = 0; i < a.length; i++) {
            ab += a[i] * b[i];
            aa += a[i] * a[i];
            bb += b[i] * b[i];
        }
        return ab / Math.sqrt(aa * bb);
    }
}
