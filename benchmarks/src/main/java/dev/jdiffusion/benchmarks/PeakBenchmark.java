package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.cpu.MachinePeak;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The machine's ceiling: {@link MachinePeak#CHAINS} independent FMA chains on the widest vector
 * species, {@link #ITERATIONS} rounds per operation. Run with {@code -t 1} and {@code -t 2}: each
 * thread runs its own chains, so the 2-thread score is the two-core ceiling.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector"})
public class PeakBenchmark {
    public static final long ITERATIONS = 1 << 20;

    /** Floating-point operations in one call of {@link #fma()}. */
    public static long flopsPerOp() {
        return MachinePeak.flops(ITERATIONS);
    }

    @Benchmark
    public float fma() {
        return MachinePeak.fmaChains(ITERATIONS);
    }
}
