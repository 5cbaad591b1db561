package dev.jdiffusion.cli;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.cpu.MachinePeak;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaProbe;
import java.util.Random;
import java.util.concurrent.Callable;
import jdk.incubator.vector.FloatVector;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Reports what this machine offers jdiffusion: JDK, vector width, cores, measured GFLOP/s, CUDA. */
@Command(name = "doctor", mixinStandardHelpOptions = true,
        description = "Print the JDK, the Vector API width, the cores, this machine's measured GFLOP/s and whether CUDA is usable.")
final class DoctorCommand implements Callable<Integer> {

    @Option(names = "--quick", description = "Shorter measurements (less precise).")
    boolean quick;

    @Override
    public Integer call() {
        Runtime rt = Runtime.getRuntime();
        int cores = rt.availableProcessors();
        System.out.printf("JDK            %s (%s), %s%n", System.getProperty("java.version"),
                System.getProperty("java.vm.vendor"), System.getProperty("java.home"));
        System.out.printf("OS / arch      %s %s / %s%n", System.getProperty("os.name"), System.getProperty("os.version"),
                System.getProperty("os.arch"));
        System.out.printf("Vector API     %s: %d bits, %d float lanes%n", FloatVector.SPECIES_PREFERRED,
                FloatVector.SPECIES_PREFERRED.vectorBitSize(), FloatVector.SPECIES_PREFERRED.length());
        System.out.printf("Cores          %d%n", cores);
        System.out.printf("Max heap       %.1f GiB%n", rt.maxMemory() / (double) (1L << 30));

        long millis = quick ? 100 : 400;
        double peak1 = MachinePeak.measureGflops(1, millis);
        double peakAll = MachinePeak.measureGflops(cores, millis);
        System.out.printf("FMA peak       %.1f GFLOP/s on 1 thread, %.1f GFLOP/s on %d threads%n", peak1, peakAll, cores);

        int n = quick ? 512 : 1024;
        try (CpuBackend cpu = new CpuBackend(cores)) {
            Random rnd = new Random(1);
            float[] a = new float[n * n];
            float[] b = new float[n * n];
            for (int i = 0; i < a.length; i++) {
                a[i] = rnd.nextFloat() - 0.5f;
                b[i] = rnd.nextFloat() - 0.5f;
            }
            Tensor ta = Tensor.of(a, n, n);
            Tensor tb = Tensor.of(b, n, n);
            // warm-up until the kernels are compiled, then the best of the timed runs
            long warm = System.nanoTime() + millis * 4_000_000L;
            while (System.nanoTime() < warm) {
                cpu.matmul(ta, tb, false, false);
            }
            double best = Double.MAX_VALUE;
            long deadline = System.nanoTime() + millis * 3_000_000L;
            int runs = 0;
            while (runs < 3 || System.nanoTime() < deadline) {
                long t = System.nanoTime();
                cpu.matmul(ta, tb, false, false);
                best = Math.min(best, (System.nanoTime() - t) / 1e9);
                runs++;
            }
            double gemm = 2.0 * n * n * n / best / 1e9;
            System.out.printf("GEMM %dx%dx%d  %.1f GFLOP/s on %d threads (%.0f%% of the FMA peak)%n", n, n, n, gemm,
                    cores, 100 * gemm / peakAll);
        }
        System.out.printf("CUDA           %s%n", CudaProbe.probe());
        return 0;
    }
}
