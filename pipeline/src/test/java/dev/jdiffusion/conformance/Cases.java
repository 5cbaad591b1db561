package dev.jdiffusion.conformance;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;

/** What the model conformance tests share: the data folder, weights as tensors, ids, and the tensor comparison. */
final class Cases {
    private Cases() {
    }

    static Path root() {
        return Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
    }

    /** Runs one case: its path relative to the data root and its folder. */
    @FunctionalInterface
    interface CaseRunner {
        void run(String rel, Path dir) throws IOException;
    }

    /** A dynamic test per case folder (one holding a manifest.json) under {@code area}; skipped without data. */
    static Stream<DynamicTest> scan(String area, CaseRunner runner) throws IOException {
        Path dir = root().resolve(area);
        Assumptions.assumeTrue(Files.isDirectory(dir), "no " + area + " conformance data at " + dir + "; skipped");
        String missing = emulatorMissing();
        if (missing != null) {
            String why = "the emulated GPU asked for cannot be built here (" + missing + "); its cases skipped";
            System.out.println("conformance " + area + ": " + why);
            Assumptions.abort(why);
        }
        List<DynamicTest> tests = new ArrayList<>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path manifest : walk.filter(p -> p.getFileName().toString().equals("manifest.json")).sorted().toList()) {
                String rel = root().relativize(manifest.getParent()).toString();
                tests.add(DynamicTest.dynamicTest(rel, () -> runner.run(rel, manifest.getParent())));
            }
        }
        return tests.stream();
    }

    /**
     * The backend the network cases run on: the CPU backend (2 threads), or with
     * {@code -Dconformance.device=cuda} (or {@code cuda:N}) a GPU; {@code emulated}: the CUDA kernels
     * on the adversarial emulated GPU of cuda-backend's tests (where reading memory nothing wrote
     * reads NaN). On a GPU, real or emulated, in the precision
     * {@code -Dconformance.precision} names: {@code full} (the default; float32 throughout, held to
     * the cases' float32 bounds) or {@code autocast} (F16 weights and activations on the tensor cores,
     * held to {@link #AUTOCAST_REL_L2}). A GPU asked for and not usable fails the run.
     */
    static Backend backend() {
        return backend(device());
    }

    static Backend backend(String device) {
        if (device.equals("cpu") && autocast()) {
            throw new IllegalArgumentException("conformance.precision=autocast is a GPU precision; the CPU computes in float32");
        }
        if (device.equals("emulated")) {
            // where it cannot be built, scan() skips every case: the CPU backend stands in, unused
            return emulatorMissing() != null ? new dev.jdiffusion.core.cpu.CpuBackend(1)
                    : dev.jdiffusion.cuda.EmulatedDevice.adversarialBackend(!autocast());
        }
        return device.equals("cpu") ? new dev.jdiffusion.core.cpu.CpuBackend(2)
                : dev.jdiffusion.pipeline.Devices.open(device, autocast() ? "autocast" : "full");
    }

    /**
     * The relative L2 error every tensor of a network case may have in autocast, whatever its float32
     * bound: four F16 unit roundoffs (2⁻¹¹ each), as for a single F16 product in cuda-backend's tests.
     * Each layer rounds its operands to F16 (a relative error of at most 2⁻¹¹ each, about 0.8·2⁻¹¹ RMS
     * in a product of two), and the normalisations between layers keep that from growing with depth:
     * the tiny networks measured one to two units. A wrong index or tile shows as an error of order one.
     */
    static final double AUTOCAST_REL_L2 = 4 * Math.pow(2, -11);

    /** Whether the networks run in F16 on this backend: a GPU's, real or emulated, in autocast. */
    static boolean halfPrecision(Backend backend) {
        return autocast() && !(backend instanceof dev.jdiffusion.core.cpu.CpuBackend);
    }

    static boolean autocast() {
        String p = System.getProperty("conformance.precision", "full");
        if (!p.equals("full") && !p.equals("autocast")) {
            throw new IllegalArgumentException("conformance.precision must be full or autocast, not " + p);
        }
        return p.equals("autocast");
    }

    /** Why the emulated GPU, when asked for ({@code -Dconformance.device=emulated}), cannot run here; else null. */
    static String emulatorMissing() {
        return device().equals("emulated") ? dev.jdiffusion.cuda.EmulatedDevice.unavailable() : null;
    }

    static String device() {
        return System.getProperty("conformance.device", "cpu");
    }

    /**
     * A file's weights in a backend's memory in the type it computes with (on the CPU: as read; on a
     * GPU in autocast F16, so that every product of the network runs on the tensor cores).
     */
    static Map<String, Tensor> tensors(Backend backend, SafetensorsFile f) {
        Map<String, Tensor> m = tensors(f);
        m.replaceAll((k, t) -> backend.uploadWeight(t));
        return m;
    }

    static Map<String, Tensor> tensors(SafetensorsFile f) {
        Map<String, Tensor> m = new HashMap<>();
        for (Map.Entry<String, StoredTensor> e : f.tensors().entrySet()) {
            m.put(e.getKey(), e.getValue().toTensor());
        }
        return m;
    }

    /** A stored tensor's values as float32 (e.g. the timesteps a UNet takes). */
    static float[] floats(StoredTensor t) {
        double[] d = t.doubles();
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    static int[][] ids(StoredTensor t) {
        double[] d = t.doubles();
        int rows = t.intShape()[0];
        int cols = t.intShape()[1];
        int[][] r = new int[rows][cols];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                r[i][j] = (int) d[i * cols + j];
            }
        }
        return r;
    }

    /** rel_l2 and max_abs per tensor against the stated bounds; the worst of each for the case's line. */
    static final class Compare {
        final Backend backend;
        final double rel;
        final double abs;
        double worstRel;
        double worstAbs;
        final List<String> failures = new ArrayList<>();

        /**
         * Bounds for float32 results. A network computed in autocast on a GPU is held to
         * {@link #AUTOCAST_REL_L2} instead (where the float32 bound is tighter or absent), its largest
         * difference reported but not bounded: F16's absolute error grows with the values.
         */
        Compare(Backend backend, double rel, double abs) {
            this.backend = backend;
            boolean half = halfPrecision(backend);
            this.rel = half ? (Double.isInfinite(rel) ? AUTOCAST_REL_L2 : Math.max(rel, AUTOCAST_REL_L2)) : rel;
            this.abs = half ? Double.POSITIVE_INFINITY : abs;
        }

        void fail(String why) {
            failures.add(why);
        }

        void compare(String name, Tensor got, StoredTensor want) {
            compare(name, got, want.doubles());
        }

        void compare(String name, double[] got, StoredTensor want) {
            float[] f = new float[got.length];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) got[i];
            }
            compare(name, Tensor.of(f, f.length), want.doubles());
        }

        void compare(String name, double[] got, double[] want) {
            float[] f = new float[got.length];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) got[i];
            }
            compare(name, Tensor.of(f, f.length), want);
        }

        void compare(String name, Tensor got, double[] want) {
            if (got == null) {
                fail(name + ": not computed");
                return;
            }
            float[] g = backend.toHost(got).toFloatArray();
            if (g.length != want.length) {
                fail(name + ": " + g.length + " values, expected " + want.length);
                return;
            }
            double num = 0;
            double den = 0;
            double max = 0;
            for (int i = 0; i < g.length; i++) {
                double d = g[i] - want[i];
                num += d * d;
                den += want[i] * want[i];
                max = Math.max(max, Math.abs(d));
            }
            double r = Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
            worstRel = Math.max(worstRel, r);
            worstAbs = Math.max(worstAbs, max);
            if (!(r <= rel) || !(max <= abs)) {
                fail(String.format("%s: rel_l2 %.3g (<= %.1g), max_abs %.3g (<= %.1g)", name, r, rel, max, abs));
            }
        }

        /** Prints the case's conformance line; true when it passed. */
        boolean report(String rel) {
            System.out.printf("conformance %s %s rel_l2_err=%.3g max_abs_err=%.3g%s%n", rel, failures.isEmpty() ? "PASS" : "FAIL",
                    worstRel, worstAbs, device().equals("cpu") ? "" : " device=" + device() + (autocast() ? " precision=autocast" : ""));
            return failures.isEmpty();
        }
    }
}
