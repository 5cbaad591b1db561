package dev.jdiffusion.core.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's single-precision arithmetic ceiling as the JVM sees it: independent FMA chains on
 * the widest vector species (enough chains to cover the FMA latency on every current core), one
 * burst per thread. The benchmarks report their GFLOP/s as a fraction of this.
 */
public final class MachinePeak {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Independent accumulator chains per thread. */
    public static final int CHAINS = 12;

    private MachinePeak() {
    }

    /** Floating-point operations done by {@link #fmaChains(long)} for {@code iterations}. */
    public static long flops(long iterations) {
        return iterations * CHAINS * S.length() * 2L;
    }

    /** Runs {@code iterations} rounds of {@link #CHAINS} independent vector FMAs; returns a value that depends on all. */
    public static float fmaChains(long iterations) {
        FloatVector m = FloatVector.broadcast(S, 0.999999f);
        FloatVector c = FloatVector.broadcast(S, 1e-6f);
        FloatVector a0 = FloatVector.broadcast(S, 1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        FloatVector a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++) {
            a0 = a0.fma(m, c); a1 = a1.fma(m, c); a2 = a2.fma(m, c); a3 = a3.fma(m, c);
            a4 = a4.fma(m, c); a5 = a5.fma(m, c); a6 = a6.fma(m, c); a7 = a7.fma(m, c);
            a8 = a8.fma(m, c); a9 = a9.fma(m, c); a10 = a10.fma(m, c); a11 = a11.fma(m, c);
        }
        return VecMath.sumLanes(a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9)
                .add(a10).add(a11));
    }

    /**
     * Measures the FMA ceiling in GFLOP/s with {@code threads} threads running concurrently for about
     * {@code millis} milliseconds (after a warm-up of the same length).
     */
    public static double measureGflops(int threads, long millis) {
        long iterations = 1L << 18;
        // warm-up until compiled code runs (at least 300 ms), then calibrate a round to about millis/5
        long warmEnd = System.nanoTime() + Math.max(300, millis) * 1_000_000L;
        while (System.nanoTime() < warmEnd) {
            fmaChains(iterations);
        }
        long t = System.nanoTime();
        fmaChains(iterations);
        double per = Math.max(1, System.nanoTime() - t);
        long rounds = Math.max(1, (long) (millis * 1e6 / 5 / per));
        double best = 0;
        for (int trial = 0; trial < 3; trial++) {
            best = Math.max(best, timedBurst(threads, iterations, rounds));
        }
        return best;
    }

    private static double timedBurst(int threads, long iters, long rounds) {
        Thread[] workers = new Thread[threads];
        float[] sink = new float[threads];
        long start = System.nanoTime();
        for (int i = 0; i < threads; i++) {
            int id = i;
            workers[i] = new Thread(() -> {
                float s = 0;
                for (long r = 0; r < rounds; r++) {
                    s += fmaChains(iters);
                }
                sink[id] = s;
            });
            workers[i].start();
        }
        for (Thread w : workers) {
            try {
                w.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while measuring", e);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        if (Float.isNaN(sink[0])) {
            throw new AssertionError("unreachable: keeps the result alive");
        }
        return flops(iters) * rounds * threads / seconds / 1e9;
    }
}
