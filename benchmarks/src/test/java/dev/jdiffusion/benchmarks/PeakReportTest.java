package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.runner.BenchmarkList;
import org.openjdk.jmh.runner.BenchmarkListEntry;
import org.openjdk.jmh.runner.format.OutputFormatFactory;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.VerboseMode;

/** Which benchmarks the CPU report runs, resolved against the jar's benchmark list as JMH resolves them. */
class PeakReportTest {
    private static Set<String> selected(String... args) throws Exception {
        Options o = PeakReport.cpuKernels(new CommandLineOptions(args));
        Set<String> names = new TreeSet<>();
        for (BenchmarkListEntry e : BenchmarkList.defaultList().find(
                OutputFormatFactory.createFormatInstance(System.out, VerboseMode.SILENT), o.getIncludes(), o.getExcludes())) {
            names.add(e.getUsername());
        }
        return names;
    }

    @Test
    void theCpuReportRunsTheCpuKernelsOnly() throws Exception {
        Set<String> all = selected();
        Set<String> named = selected("KernelBenchmark");
        assertEquals(all, named);
        assertEquals(6, all.size(), all.toString());
        for (String name : all) {
            assertFalse(name.contains("Cuda"), name);
        }
        assertEquals(Set.of(KernelBenchmark.class.getName() + ".conv3x3_320ch_64x64",
                KernelBenchmark.class.getName() + ".conv3x3_640ch_32x32"), selected("KernelBenchmark.conv3x3"));
        // other benchmarks still run in it when named
        assertEquals(List.of(ModelBenchmark.class.getName() + ".unetStep_64x64_batch2"), List.copyOf(selected("ModelBenchmark.unetStep")));
    }

    /** A network's line: against the CPU's ceiling on the CPU; on a GPU its settings and no CPU fraction. */
    @Test
    void networkLinesSayWhereTheyRan() {
        double[] peak = {0, 200, 400};
        java.util.Map<String, String> cpu = java.util.Map.of("device", "cpu", "precision", "autocast", "cudaGraph", "false",
                "roundTrip", "true");
        String line = PeakReport.modelLine("unetStep_64x64_batch2", cpu::get, 10, 1.6e12, peak);
        int cores = Runtime.getRuntime().availableProcessors();
        org.junit.jupiter.api.Assertions.assertTrue(line.contains(" 160.0 ")
                && line.contains(String.format("%.0f%%", 100 * 160.0 / peak[Math.min(2, cores)])), line);
        java.util.Map<String, String> gpu = java.util.Map.of("device", "cuda", "precision", "full", "cudaGraph", "true",
                "roundTrip", "false");
        String g = PeakReport.modelLine("unetStep_128x128_batch2", gpu::get, 0.1, 13.5e12, peak);
        org.junit.jupiter.api.Assertions.assertTrue(g.contains(" gpu ") && g.contains("135000.0") && g.contains("100.00 ms/op")
                && g.contains("cuda full graph on-device") && !g.contains("%"), g);
    }
}
