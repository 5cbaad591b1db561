package dev.jdiffusion.benchmarks;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs the FMA ceiling on 1 and 2 threads and the kernel benchmarks, then prints every kernel's
 * GFLOP/s and its fraction of the ceiling for the same thread count. Extra arguments are JMH's
 * (e.g. a benchmark regex, {@code -f 2}, {@code -wi 5}).
 */
public final class PeakReport {
    private PeakReport() {
    }

    public static void main(String[] args) throws RunnerException, CommandLineOptionException, java.io.IOException {
        CommandLineOptions cli = new CommandLineOptions(args);
        if (cli.shouldHelp() || cli.shouldList()) {
            org.openjdk.jmh.Main.main(args);
            return;
        }
        double[] peak = new double[3];
        for (int t = 1; t <= 2; t++) {
            ChainedOptionsBuilder o = new OptionsBuilder().include(PeakBenchmark.class.getName() + ".fma").threads(t);
            if (cli.getWarmupIterations().hasValue()) {
                o.warmupIterations(cli.getWarmupIterations().get());
            }
            if (cli.getMeasurementIterations().hasValue()) {
                o.measurementIterations(cli.getMeasurementIterations().get());
            }
            if (cli.getWarmupTime().hasValue()) {
                o.warmupTime(cli.getWarmupTime().get());
            }
            if (cli.getMeasurementTime().hasValue()) {
                o.measurementTime(cli.getMeasurementTime().get());
            }
            if (cli.getForkCount().hasValue()) {
                o.forks(cli.getForkCount().get());
            }
            RunResult r = new Runner(o.build()).runSingle();
            // throughput is summed over threads by JMH
            peak[t] = r.getPrimaryResult().getScore() * PeakBenchmark.flopsPerOp() / 1e9;
        }
        ChainedOptionsBuilder kernels = new OptionsBuilder().parent(cli).threads(1);
        kernels.include(cli.getIncludes().isEmpty() ? KernelBenchmark.class.getName() : String.join("|", cli.getIncludes()));
        Collection<RunResult> results = new Runner(kernels.build()).run();
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-30s %7s %10s %9s", "benchmark", "threads", "GFLOP/s", "of peak"));
        lines.add(String.format("%-30s %7d %10.1f %8.0f%%", "fma peak", 1, peak[1], 100.0));
        lines.add(String.format("%-30s %7d %10.1f %8.0f%%", "fma peak", 2, peak[2], 100.0));
        for (RunResult r : results) {
            String label = r.getParams().getBenchmark();
            String method = label.substring(label.lastIndexOf('.') + 1);
            if (!label.startsWith(KernelBenchmark.class.getName())) {
                continue;
            }
            int threads = Integer.parseInt(r.getParams().getParam("threads"));
            double gflops = r.getPrimaryResult().getScore() * KernelBenchmark.flops(method) / 1e9;
            lines.add(String.format("%-30s %7d %10.1f %8.0f%%", method, threads, gflops,
                    100 * gflops / peak[Math.min(2, threads)]));
        }
        System.out.println();
        System.out.println("GFLOP/s against the measured FMA ceiling (" + Runtime.getRuntime().availableProcessors()
                + " cores):");
        lines.forEach(System.out::println);
    }
}
