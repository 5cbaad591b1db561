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
import org.openjdk.jmh.runner.options.Options;
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
        List<String> includes = new ArrayList<>(cli.getIncludes());
        if (!includes.isEmpty() && includes.stream().allMatch(i -> i.toLowerCase(java.util.Locale.ROOT).contains("checkpoint"))) {
            checkpointReport(cli);
            return;
        }
        if (!includes.isEmpty() && includes.stream().allMatch(i -> i.toLowerCase(java.util.Locale.ROOT).contains("lora"))) {
            loraReport(cli);
            return;
        }
        if (!includes.isEmpty() && includes.stream().allMatch(i -> i.toLowerCase(java.util.Locale.ROOT).contains("cuda"))) {
            cudaReport(cli);
            return;
        }
        double[] peak = new double[3];
        // networks timed on a GPU only (-p device=cuda): the CPU's ceiling is not what they are measured against
        org.openjdk.jmh.util.Optional<java.util.Collection<String>> devices = cli.getParameter("device");
        boolean gpuOnly = devices.hasValue() && !devices.get().isEmpty() && devices.get().stream().noneMatch("cpu"::equals);
        for (int t = 1; t <= (gpuOnly ? 0 : 2); t++) {
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
        Collection<RunResult> results = new Runner(cpuKernels(cli)).run();
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%-30s %7s %10s %9s", "benchmark", "threads", "GFLOP/s", "of peak"));
        if (!gpuOnly) {
            lines.add(String.format("%-30s %7d %10.1f %8.0f%%", "fma peak", 1, peak[1], 100.0));
            lines.add(String.format("%-30s %7d %10.1f %8.0f%%", "fma peak", 2, peak[2], 100.0));
        }
        for (RunResult r : results) {
            String label = r.getParams().getBenchmark();
            String method = label.substring(label.lastIndexOf('.') + 1);
            boolean sdxl = label.startsWith(SdxlBenchmark.class.getName());
            if (sdxl || label.startsWith(ModelBenchmark.class.getName())) {
                double flops = sdxl ? SdxlBenchmark.flops() : ModelBenchmark.flops(method);
                lines.add(modelLine(method, r.getParams()::getParam, r.getPrimaryResult().getScore(), flops, peak));
                continue;
            }
            if (!label.startsWith(KernelBenchmark.class.getName())) {
                continue;
            }
            int threads = Integer.parseInt(r.getParams().getParam("threads"));
            double gflops = r.getPrimaryResult().getScore() * KernelBenchmark.flops(method) / 1e9;
            lines.add(String.format("%-30s %7d %10.1f %8.0f%%", method, threads, gflops,
                    100 * gflops / peak[Math.min(2, threads)]));
        }
        printCheckpointResults(results);
        System.out.println();
        System.out.println(gpuOnly ? "GFLOP/s on the GPU:" : "GFLOP/s against the measured FMA ceiling ("
                + Runtime.getRuntime().availableProcessors() + " cores):");
        lines.forEach(System.out::println);
    }

    /**
     * A network benchmark's line: seconds per operation on every core against the CPU's ceiling, or
     * on a GPU (its parameters named, no CPU fraction: the GPU's own peak is {@link CudaKernelBenchmark}'s).
     */
    static String modelLine(String method, java.util.function.UnaryOperator<String> param, double seconds, double flops,
                            double[] peak) {
        double gflops = flops / seconds / 1e9;
        String device = param.apply("device");
        if (device != null && !device.equals("cpu")) {
            String what = String.format("%s %s%s%s", device, param.apply("precision"),
                    Boolean.parseBoolean(param.apply("cudaGraph")) ? " graph" : "",
                    Boolean.parseBoolean(param.apply("roundTrip")) ? "" : " on-device");
            return String.format("%-30s %7s %10.1f %9s   (%.2f ms/op, %.1f GFLOP; %s)", method, "gpu", gflops, "",
                    seconds * 1e3, flops / 1e9, what);
        }
        int cores = Runtime.getRuntime().availableProcessors();
        return String.format("%-30s %7d %10.1f %8.0f%%   (%.2f s/op, %.1f GFLOP)", method, cores, gflops,
                100 * gflops / peak[Math.min(2, cores)], seconds, flops / 1e9);
    }

    /**
     * The CPU report's benchmarks: {@link KernelBenchmark} or what the arguments name, never the GPU's
     * ({@link CudaKernelBenchmark}, whose name a pattern such as {@code KernelBenchmark} also matches:
     * they have a report of their own, asked for by a pattern naming CUDA).
     */
    static Options cpuKernels(CommandLineOptions cli) {
        return new OptionsBuilder().parent(cli).threads(1)
                .include(cli.getIncludes().isEmpty() ? KernelBenchmark.class.getName() : String.join("|", cli.getIncludes()))
                .exclude(CudaKernelBenchmark.class.getName().replace(".", "\\."))
                .build();
    }

    /**
     * The LoRA merge against its floor: the touched weights read and written once (measured as a copy of
     * them on all cores) plus the products at the measured GEMM rate (the 4096×320×2880 GEMM on all cores).
     */
    private static void loraReport(CommandLineOptions cli) throws RunnerException {
        Collection<RunResult> lora = new Runner(new OptionsBuilder().parent(cli).include(LoraMergeBenchmark.class.getName())
                .build()).run();
        int cores = Math.min(2, Runtime.getRuntime().availableProcessors());
        RunResult gemm = new Runner(new OptionsBuilder().include(KernelBenchmark.class.getName() + ".gemm_4096x320x2880")
                .param("threads", Integer.toString(cores)).build()).runSingle();
        double gemmFlops = gemm.getPrimaryResult().getScore() * KernelBenchmark.flops("gemm_4096x320x2880");
        double mergeMs = Double.NaN;
        double copyMs = Double.NaN;
        for (RunResult r : lora) {
            String label = r.getParams().getBenchmark();
            if (label.endsWith(".merge")) {
                mergeMs = r.getPrimaryResult().getScore();
            } else if (label.endsWith(".copy")) {
                copyMs = r.getPrimaryResult().getScore();
            }
        }
        double arithmeticMs = LoraMergeBenchmark.flops() / gemmFlops * 1e3;
        double bandwidth = 2.0 * LoraMergeBenchmark.COPY_BYTES / (copyMs / 1e3);
        double memoryMs = LoraMergeBenchmark.bytes() / bandwidth * 1e3;
        double floorMs = memoryMs + arithmeticMs;
        System.out.println();
        System.out.printf(java.util.Locale.ROOT, "LoRA merge, rank %d over an SDXL-sized UNet's attention and convolution"
                + " layers (%.2f G F16 weights, %.1f GFLOP of products), %d cores:%n", LoraMergeBenchmark.RANK,
                LoraMergeBenchmark.elements() / 1e9, LoraMergeBenchmark.flops() / 1e9, cores);
        System.out.printf(java.util.Locale.ROOT, "  memory floor: the weights read and written  %8.0f ms  (%.1f GB/s read+write,"
                + " measured by a copy)%n", memoryMs, bandwidth / 1e9);
        System.out.printf(java.util.Locale.ROOT, "  arithmetic floor at the GEMM rate          %8.0f ms  (%.1f GFLOP/s)%n",
                arithmeticMs, gemmFlops / 1e9);
        System.out.printf(java.util.Locale.ROOT, "  floor                                      %8.0f ms%n", floorMs);
        System.out.printf(java.util.Locale.ROOT, "  merge                                      %8.0f ms  = %.2f x the floor%n", mergeMs,
                mergeMs / floorMs);
    }

    /**
     * The GPU kernels ({@link CudaKernelBenchmark}): the products' TFLOP/s against the tensor cores'
     * measured peak, the memory-bound kernels' GB/s against the measured device-to-device copy.
     */
    private static void cudaReport(CommandLineOptions cli) throws RunnerException {
        dev.jdiffusion.cuda.CudaProbe.Result probe = dev.jdiffusion.cuda.CudaProbe.probe();
        if (!probe.available()) {
            System.out.println("CUDA kernels not run: no CUDA device can be used (" + probe.reason() + ")");
            return;
        }
        Collection<RunResult> results = new Runner(new OptionsBuilder().parent(cli).build()).run();
        java.util.Map<String, Double> ms = new java.util.LinkedHashMap<>();
        for (RunResult r : results) {
            String label = r.getParams().getBenchmark();
            if (label.startsWith(CudaKernelBenchmark.class.getName())) {
                ms.put(label.substring(label.lastIndexOf('.') + 1), r.getPrimaryResult().getScore());
            }
        }
        Double peakMs = ms.get("tensorCorePeak_f16");
        Double copyMs = ms.get("copy_256MiB");
        double peak = peakMs == null ? Double.NaN : CudaKernelBenchmark.flops("tensorCorePeak_f16") / (peakMs / 1e3) / 1e12;
        double copy = copyMs == null ? Double.NaN : CudaKernelBenchmark.bytes("copy_256MiB") / (copyMs / 1e3) / 1e9;
        System.out.println();
        System.out.println("CUDA kernels, F16 tensor-core peak " + String.format(java.util.Locale.ROOT, "%.1f", peak)
                + " TFLOP/s, device copy " + String.format(java.util.Locale.ROOT, "%.0f", copy) + " GB/s (read + write):");
        System.out.println(String.format("%-32s %10s %12s %9s", "benchmark", "ms/op", "rate", "of peak"));
        for (java.util.Map.Entry<String, Double> e : ms.entrySet()) {
            double flops = CudaKernelBenchmark.flops(e.getKey());
            double bytes = CudaKernelBenchmark.bytes(e.getKey());
            double seconds = e.getValue() / 1e3;
            String rate = flops > 0 ? String.format(java.util.Locale.ROOT, "%.1f TFLOP/s", flops / seconds / 1e12)
                    : String.format(java.util.Locale.ROOT, "%.0f GB/s", bytes / seconds / 1e9);
            double of = flops > 0 ? flops / seconds / 1e12 / peak : bytes / seconds / 1e9 / copy;
            System.out.println(String.format(java.util.Locale.ROOT, "%-32s %10.3f %12s %8.0f%%", e.getKey(), e.getValue(), rate,
                    100 * of));
        }
    }

    private static void checkpointReport(CommandLineOptions cli) throws RunnerException, java.io.IOException {
        printCheckpointResults(new Runner(new OptionsBuilder().parent(cli).build()).run());
    }

    /** Milliseconds per operation, file GB/s, and each materialisation against {@code cat} of the same file. */
    private static void printCheckpointResults(Collection<RunResult> results) throws java.io.IOException {
        java.util.Map<String, Double> ms = new java.util.LinkedHashMap<>();
        for (RunResult r : results) {
            String label = r.getParams().getBenchmark();
            if (label.startsWith(CheckpointBenchmark.class.getName())) {
                ms.put(label.substring(label.lastIndexOf('.') + 1), r.getPrimaryResult().getScore());
            }
        }
        if (ms.isEmpty()) {
            return;
        }
        System.out.println();
        System.out.println("Checkpoint loading (SD 1.5 shapes, files in " + CheckpointBenchmark.dir() + "):");
        System.out.println(String.format("%-26s %10s %8s %14s", "benchmark", "ms/op", "GB/s", "× cat of file"));
        for (java.util.Map.Entry<String, Double> e : ms.entrySet()) {
            String method = e.getKey();
            double bytes = CheckpointBenchmark.fileBytes(method);
            String file = method.endsWith("F32") ? "F32" : "F16";
            Double cat = ms.get("cat" + file);
            String ratio = !method.startsWith("cat") && !method.startsWith("openAndList") && cat != null ? String.format("%.2f", e.getValue() / cat) : "";
            String rate = method.startsWith("openAndList") ? "" : String.format("%.2f", bytes / (e.getValue() / 1e3) / 1e9);
            System.out.println(String.format("%-26s %10.1f %8s %14s", method, e.getValue(), rate, ratio));
        }
    }
}
