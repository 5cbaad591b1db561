package dev.jdiffusion.samplers;

import dev.jdiffusion.samplers.rng.PhiloxGenerator;
import dev.jdiffusion.samplers.rng.TorchCpuGenerator;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Cases of kind {@code rng_torch_cpu} and {@code rng_philox_a1111}: every stored tensor regenerated from its seed. */
final class RngCases {
    private static final Pattern NAME =
            Pattern.compile("seed(\\d+)/(?:(sequence)/(\\d+)_|(f64)/)?([0-9x]+)(?:@(avx2|default))?");

    private RngCases() {
    }

    static void run(ConformanceCase c, Errors e, boolean philox) {
        e.relName = "max_abs_err_worst";
        // element counts of the manifest's sequence_shapes, in draw order
        int[] sequenceSizes = ConformanceCase.list(c.manifest.get("sequence_shapes")).stream()
                .mapToInt(shape -> ConformanceCase.list(shape).stream().mapToInt(d -> (int) ConformanceCase.num(d))
                        .reduce(1, (a, b) -> a * b)).toArray();
        for (String name : new TreeMap<>(c.map("tensors")).keySet()) {
            if (name.startsWith("selftest/")) {
                if (name.equals("selftest/seed0/3x4")) {
                    compare(e, name, widen(new PhiloxGenerator(0).randn(12)), c.tensor(name), 0);
                }
                continue;
            }
            Matcher m = NAME.matcher(name);
            if (!m.matches()) {
                e.check(false, "cannot read tensor name " + name);
                continue;
            }
            long seed = Long.parseLong(m.group(1));
            int n = 1;
            for (String d : m.group(5).split("x")) {
                n *= Integer.parseInt(d);
            }
            boolean f64 = m.group(4) != null;
            String kernel = m.group(6);
            double[] got;
            if (m.group(2) != null) {
                // consecutive draws from one generator: replay draws 0..k-1, then draw k
                int k = Integer.parseInt(m.group(3));
                if (philox) {
                    PhiloxGenerator g = new PhiloxGenerator(seed);
                    for (int i = 0; i < k; i++) {
                        g.randn(sequenceSizes[i]);
                    }
                    got = widen(g.randn(n));
                } else {
                    TorchCpuGenerator g = new TorchCpuGenerator(seed, kernelOf(kernel));
                    for (int i = 0; i < k; i++) {
                        g.randn(sequenceSizes[i]);
                    }
                    got = widen(g.randn(n));
                }
            } else if (philox) {
                got = widen(new PhiloxGenerator(seed).randn(n));
            } else if (f64) {
                got = new TorchCpuGenerator(seed).randnDouble(n);
            } else {
                got = widen(new TorchCpuGenerator(seed, kernelOf(kernel)).randn(n));
            }
            // n < 16 and Philox: bitwise; float64: 2 ulps of libm; float32: 2 float ulps of the kernel
            double tol;
            if (philox || n < 16) {
                tol = 0;
            } else if (f64) {
                tol = 2e-15;
            } else {
                tol = 2.4e-7;
            }
            compare(e, name, got, c.tensor(name), tol);
        }
    }

    private static TorchCpuGenerator.Kernel kernelOf(String name) {
        return "default".equals(name) ? TorchCpuGenerator.Kernel.PORTABLE : TorchCpuGenerator.Kernel.AVX2;
    }

    private static double[] widen(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static void compare(Errors e, String name, double[] got, double[] ref, double tol) {
        double worst = Errors.maxAbs(got, ref);
        e.worstRel = Math.max(e.worstRel, worst);
        e.worstAbs = Math.max(e.worstAbs, worst);
        if (got.length != ref.length || !(worst <= tol)) {
            e.check(false, String.format("%s: max |got - ref| = %.3g > %.3g", name, worst, tol));
        }
    }
}
