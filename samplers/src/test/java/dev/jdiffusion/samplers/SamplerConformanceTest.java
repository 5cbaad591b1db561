package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs every sampler, schedule and RNG case under {@code conformance.dir}'s {@code samplers/} and
 * {@code rng/} folders, by the manifest's {@code kind}, and prints one line per case:
 * {@code conformance <case> PASS|FAIL <metric>=<value>}.
 */
class SamplerConformanceTest {
    /** The folders under {@code conformance.dir} whose cases this test runs. */
    private static final List<String> AREAS = List.of("samplers", "rng");

    @TestFactory
    Stream<DynamicTest> everySamplerCase() throws IOException {
        Path root = ConformanceCase.root();
        Assumptions.assumeTrue(Files.isDirectory(root), "no conformance data at " + root + "; skipped");
        List<DynamicTest> tests = new ArrayList<>();
        for (String area : AREAS) {
            Path dir = root.resolve(area);
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path manifest : walk.filter(p -> p.getFileName().toString().equals("manifest.json")).sorted().toList()) {
                    String rel = root.relativize(manifest.getParent()).toString();
                    tests.add(DynamicTest.dynamicTest(rel, () -> run(rel, manifest)));
                }
            }
        }
        Assumptions.assumeFalse(tests.isEmpty(), "no sampler cases under " + root);
        return tests.stream();
    }

    private static void run(String rel, Path manifest) throws IOException {
        try (ConformanceCase c = new ConformanceCase(rel, manifest)) {
            String kind = (String) c.manifest.get("kind");
            Errors e = new Errors();
            switch (kind) {
                case "kdiffusion_sampler" -> KDiffusionCases.run(c, e);
                case "comfyui_sampler" -> {
                    if (!ComfyUiCases.handles(c)) {
                        noRunner(rel, kind);
                    }
                    ComfyUiCases.run(c, e);
                }
                case "schedule_set" -> {
                    if (!ScheduleCases.handles(c)) {
                        noRunner(rel, kind);
                    }
                    ScheduleCases.run(c, e);
                }
                case "compvis_ddim" -> CompVisCases.run(c, e, false);
                case "compvis_plms" -> CompVisCases.run(c, e, true);
                case "a1111_unipc" -> UniPcCases.run(c, e);
                case "rng_torch_cpu" -> RngCases.run(c, e, false);
                case "rng_philox_a1111" -> RngCases.run(c, e, true);
                default -> noRunner(rel, kind);
            }
            boolean pass = e.passed();
            System.out.printf("conformance %s %s %s=%.3g max_abs_err=%.3g%n", rel, pass ? "PASS" : "FAIL", e.relName,
                    e.worstRel, e.worstAbs);
            assertTrue(pass, rel + ": " + e.failures);
        }
    }

    /** A case this test cannot run is a failure, not a skip: the data promises it can be reproduced. */
    private static void noRunner(String rel, String kind) {
        System.out.println("conformance " + rel + " FAIL kind=" + kind + " (no runner for this case)");
        throw new AssertionError("no runner for " + rel + " (kind " + kind + ")");
    }

    /** Replays stored noise: the k-th draw returns noise[k] (zeros when the case stored none), and records the call. */
    static final class StoredNoise implements NoiseSource {
        private final ConformanceCase c;
        private final boolean stored;
        private final int size;
        final List<double[]> calls = new ArrayList<>();

        StoredNoise(ConformanceCase c, int size) {
            this.c = c;
            this.size = size;
            Map<String, Object> noise = c.map("noise");
            this.stored = noise != null && Boolean.TRUE.equals(noise.get("stored"));
        }

        @Override
        public double[] next(double sigma, double sigmaNext) {
            int k = calls.size();
            calls.add(new double[] {sigma, sigmaNext});
            if (!stored) {
                return new double[size];
            }
            if (k >= c.rows("noise")) {
                throw new AssertionError("noise draw " + k + " but the case stored " + c.rows("noise"));
            }
            return c.row("noise", k);
        }
    }

    /** Records x and denoised of every step. */
    static final class Recorder implements StepListener {
        final List<Step> steps = new ArrayList<>();

        @Override
        public boolean onStep(Step s) {
            steps.add(new Step(s.index(), s.sigma(), s.sigmaHat(), s.x().clone(), s.denoised().clone(), s.adaptive()));
            return true;
        }
    }

    /** Records the sigma of every model call. */
    static final class CountingDenoiser implements GuidedDenoiser {
        private final Denoiser inner;
        final List<Double> sigmas = new ArrayList<>();

        CountingDenoiser(Denoiser inner) {
            this.inner = inner;
        }

        @Override
        public Prediction predict(double[] x, double sigma) {
            sigmas.add(sigma);
            return GuidedDenoiser.evaluate(inner, x, sigma);
        }
    }

    static double[] toArray(List<Double> l) {
        return l.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** Compares steps.x / steps.denoised rows and the per-step scalars that are stored. */
    static void compareSteps(ConformanceCase c, Errors e, List<Step> steps, double rel, double abs) {
        e.check(steps.size() == c.rows("steps.x"), "callback steps: got " + steps.size() + ", expected " + c.rows("steps.x"));
        int n = Math.min(steps.size(), c.rows("steps.x"));
        for (int i = 0; i < n; i++) {
            e.compare("steps.x[" + i + "]", steps.get(i).x(), c.row("steps.x", i), rel, abs);
            e.compare("steps.denoised[" + i + "]", steps.get(i).denoised(), c.row("steps.denoised", i), rel, abs);
        }
        if (c.has("steps.sigma") && steps.size() == c.rows("steps.sigma")) {
            e.compare("steps.sigma", steps.stream().mapToDouble(Step::sigma).toArray(), c.tensor("steps.sigma"), rel, abs);
        }
        if (c.has("steps.sigma_hat") && steps.size() == c.rows("steps.sigma_hat")) {
            e.compare("steps.sigma_hat", steps.stream().mapToDouble(Step::sigmaHat).toArray(), c.tensor("steps.sigma_hat"),
                    rel, abs);
        }
    }

    /** Compares only the steps.denoised rows (for samplers whose reference reports a stale x). */
    static void compareDenoisedSteps(ConformanceCase c, Errors e, List<Step> steps, double rel, double abs) {
        e.check(steps.size() == c.rows("steps.denoised"), "callback steps: got " + steps.size() + ", expected "
                + c.rows("steps.denoised"));
        int n = Math.min(steps.size(), c.rows("steps.denoised"));
        for (int i = 0; i < n; i++) {
            e.compare("steps.denoised[" + i + "]", steps.get(i).denoised(), c.row("steps.denoised", i), rel, abs);
        }
    }

    static void compareModelCalls(ConformanceCase c, Errors e, List<Double> sigmas, double rel, double abs) {
        if (!c.has("model_calls.sigma")) {
            return;
        }
        long[] shape = c.shape("model_calls.sigma");
        double[] all = c.tensor("model_calls.sigma");
        int cols = shape.length > 1 ? (int) shape[1] : 1;
        double[] first = new double[(int) shape[0]];
        for (int i = 0; i < first.length; i++) {
            first[i] = all[i * cols];
        }
        e.check(sigmas.size() == first.length, "model calls: got " + sigmas.size() + ", expected " + first.length);
        if (sigmas.size() == first.length) {
            e.compare("model_calls.sigma", toArray(sigmas), first, rel, abs);
        }
    }

    static void compareNoiseCalls(ConformanceCase c, Errors e, StoredNoise noise) {
        Map<String, Object> spec = c.map("noise");
        if (spec == null || !spec.containsKey("calls")) {
            return;
        }
        if (!Boolean.TRUE.equals(spec.get("stored"))) {
            return; // draws that are multiplied by 0 may be skipped
        }
        int want = (int) ConformanceCase.num(spec.get("calls"));
        e.check(noise.calls.size() == want, "noise draws: got " + noise.calls.size() + ", expected " + want);
        if (c.has("noise_sigmas") && noise.calls.size() == want) {
            double[] got = noise.calls.stream().flatMapToDouble(Arrays::stream).toArray();
            double[] ref = c.tensor("noise_sigmas");
            boolean anyNan = Arrays.stream(ref).anyMatch(Double::isNaN);
            if (!anyNan) {
                e.compare("noise_sigmas", got, ref, 1e-9, 1e-8);
            }
        }
    }
}
