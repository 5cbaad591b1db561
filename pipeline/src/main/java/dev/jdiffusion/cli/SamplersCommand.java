package dev.jdiffusion.cli;

import dev.jdiffusion.samplers.SamplerStudy;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Runs every sampler on a closed-form denoiser over a range of step counts: the error table and its plot. */
@Command(name = "samplers", mixinStandardHelpOptions = true,
        description = {"Run the samplers on Gaussian data (exact denoiser, exact ODE solution) at several step counts;",
            "print each one's error and measured order, and plot error against steps.",
            "Deterministic samplers: largest deviation from the exact ODE solution at the smallest sigma.",
            "Stochastic samplers: |sample variance / data variance - 1| (sampling error about 2 %)."})
final class SamplersCommand implements Callable<Integer> {

    @Option(names = "--steps", split = ",", defaultValue = "5,10,20,40,80",
            description = "Step counts, comma separated (default: ${DEFAULT-VALUE}).")
    int[] steps;

    @Option(names = "--schedule", defaultValue = "Karras",
            description = "Schedule by A1111 or ComfyUI name (default: ${DEFAULT-VALUE}).")
    String schedule;

    @Option(names = "--samplers", split = ",", description = "Samplers by A1111 or ComfyUI name (default: all).")
    List<String> samplers;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the starting noise and of the samplers' noise.")
    long seed;

    @Option(names = "--plot", defaultValue = "samplers.png", description = "Where to write the plot (PNG; default: ${DEFAULT-VALUE}).")
    Path plot;

    @Option(names = "--no-plot", description = "Print the table only.")
    boolean noPlot;

    @Override
    public Integer call() throws IOException {
        List<String> names = samplers == null || samplers.isEmpty() ? SamplerStudy.allSamplers() : samplers;
        List<SamplerStudy.Row> rows = SamplerStudy.run(names, schedule, steps, seed);
        int[] counts = rows.get(0).steps();
        StringBuilder head = new StringBuilder(String.format("%-32s %-9s", "sampler", "metric"));
        for (int n : counts) {
            head.append(String.format(" %10s", n + " steps"));
        }
        head.append("   order");
        System.out.println("Gaussian data (s = " + SamplerStudy.DATA_STD + "), schedule " + schedule + ", seed " + seed);
        System.out.println(head);
        for (SamplerStudy.Row r : rows) {
            StringBuilder line = new StringBuilder(String.format("%-32s %-9s", r.sampler(),
                    r.metric() == SamplerStudy.Metric.ODE_ERROR ? "ode" : "variance"));
            for (double e : r.errors()) {
                line.append(String.format(" %10.3e", e));
            }
            double order = r.order();
            line.append(Double.isNaN(order) ? "       -" : String.format(" %7.2f", order));
            System.out.println(line);
        }
        if (!noPlot) {
            ErrorPlot.write(rows, "Samplers on Gaussian data, schedule " + schedule, plot);
            System.out.println("plot: " + plot.toAbsolutePath() + " (" + Arrays.toString(counts) + " steps)");
        }
        return 0;
    }
}
