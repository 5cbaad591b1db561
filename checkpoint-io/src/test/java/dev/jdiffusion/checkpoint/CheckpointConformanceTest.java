package dev.jdiffusion.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.jdiffusion.checkpoint.pickle.Pickle;
import dev.jdiffusion.checkpoint.torch.TorchCheckpoint;
import dev.jdiffusion.checkpoint.torch.TorchTensor;
import dev.jdiffusion.core.json.Json;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Runs every checkpoint-format case under {@code conformance.dir}: each {@code manifest.json} whose
 * {@code files} map lists files of kind {@code valid}, {@code malicious} or {@code broken}. Valid
 * files must load with the listed keys, types, shapes, checksums and values; malicious files must
 * be refused (or loaded inertly) without their payload ever running; broken files must fail with a
 * {@link CheckpointFormatException} that names the file.
 */
class CheckpointConformanceTest {
    static Path conformanceDir() {
        return Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
    }

    @TestFactory
    Stream<DynamicTest> everyCheckpointCase() throws IOException {
        Path root = conformanceDir();
        Assumptions.assumeTrue(Files.isDirectory(root), "no conformance data at " + root + "; skipped");
        List<DynamicTest> tests = new ArrayList<>();
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path manifest : walk.filter(p -> p.getFileName().toString().equals("manifest.json")).sorted().toList()) {
                Object m = Json.parse(Files.readString(manifest));
                if (!(m instanceof Map<?, ?> map) || !(map.get("files") instanceof Map<?, ?> files)
                        || !files.values().stream().allMatch(v -> v instanceof Map<?, ?> f && f.get("kind") instanceof String)) {
                    continue;
                }
                for (Map.Entry<?, ?> e : files.entrySet()) {
                    Path file = manifest.getParent().resolve((String) e.getKey());
                    String rel = root.relativize(file).toString();
                    Map<?, ?> spec = (Map<?, ?>) e.getValue();
                    tests.add(DynamicTest.dynamicTest(rel, () -> runCase(rel, file, spec)));
                }
            }
        }
        Assumptions.assumeFalse(tests.isEmpty(), "no checkpoint cases under " + root);
        return tests.stream();
    }

    private static void runCase(String rel, Path file, Map<?, ?> spec) throws Exception {
        String kind = (String) spec.get("kind");
        try {
            String metric = switch (kind) {
                case "valid" -> valid(file, spec);
                case "malicious" -> malicious(file, spec);
                case "broken" -> broken(file);
                default -> throw new AssertionError("unknown case kind " + kind);
            };
            System.out.println("conformance " + rel + " PASS " + metric);
        } catch (Throwable t) {
            System.out.println("conformance " + rel + " FAIL error=" + String.valueOf(t.getMessage()).replace('\n', ' '));
            throw t;
        }
    }

    // ------------------------------------------------------------------ valid files

    private static String valid(Path file, Map<?, ?> spec) throws Exception {
        double worst = 0;
        try (Checkpoint c = Checkpoints.open(file)) {
            Map<?, ?> tensors = expectedTensors(file, spec.get("tensors"));
            for (Map.Entry<?, ?> e : tensors.entrySet()) {
                worst = Math.max(worst, checkTensor(c, (String) e.getKey(), (Map<?, ?>) e.getValue()));
            }
            if (c instanceof TorchCheckpoint t) {
                // state dicts are OrderedDicts: their keys come back in the file's order
                assertEquals(tensors.keySet().stream().toList(), t.tensors().keySet().stream().toList(),
                        "state dict keys and their order");
                Object root = t.root();
                if (spec.get("top_level_keys") instanceof List<?> keys) {
                    assertEquals(keys, new ArrayList<>(((Map<?, ?>) root).keySet()), "top-level keys");
                }
                for (String section : List.of("top_level_values", "python_values")) {
                    if (spec.get(section) instanceof Map<?, ?> values) {
                        for (Map.Entry<?, ?> v : values.entrySet()) {
                            Object actual = ((Map<?, ?>) root).get(v.getKey());
                            assertTrue(matches(v.getValue(), actual), section + " " + v.getKey() + ": expected "
                                    + v.getValue() + ", got " + repr(actual));
                        }
                    }
                }
            } else {
                assertEquals(new java.util.TreeSet<>(castKeys(tensors)), new java.util.TreeSet<>(c.tensors().keySet()),
                        "tensor names");
            }
            if (spec.get("metadata") instanceof Map<?, ?> md) {
                assertEquals(md, c.metadata(), "metadata");
            }
            return "tensors=" + tensors.size() + " max_rel_err=" + worst;
        }
    }

    @SuppressWarnings("unchecked")
    private static java.util.Set<String> castKeys(Map<?, ?> m) {
        return (java.util.Set<String>) m.keySet();
    }

    private static Map<?, ?> expectedTensors(Path file, Object spec) throws IOException {
        if (spec instanceof String name) {
            return (Map<?, ?>) Json.parse(Files.readString(file.getParent().resolve(name)));
        }
        return spec instanceof Map<?, ?> m ? m : Map.of();
    }

    /** Checks one tensor; returns the largest relative error of its float64 statistics. */
    private static double checkTensor(Checkpoint c, String name, Map<?, ?> want) throws NoSuchAlgorithmException {
        StoredTensor t = c.tensors().get(name);
        assertTrue(t != null, "missing tensor " + name);
        assertEquals(want.get("dtype"), t.type().name(), name + " dtype");
        List<Long> shape = new ArrayList<>();
        for (long d : t.shape()) {
            shape.add(d);
        }
        assertEquals(want.get("shape"), shape, name + " shape");
        MemorySegment bytes = t.bytes();
        assertEquals(t.numel() * t.type().byteSize(), bytes.byteSize(), name + " byte count");
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        sha.update(bytes.asByteBuffer());
        assertEquals(want.get("sha256"), HexFormat.of().formatHex(sha.digest()), name + " sha256");
        double[] v = t.doubles();
        double sum = 0;
        double sumSq = 0;
        double sumAbs = 0;
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        boolean nan = false;
        for (double x : v) {
            sum += x;
            sumSq += x * x;
            sumAbs += Math.abs(x);
            nan |= Double.isNaN(x);
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        double worst = 0;
        if (v.length > 0) {
            worst = Math.max(worst, close(name + " sum", want.get("sum"), sum, sumAbs));
            worst = Math.max(worst, close(name + " sum_sq", want.get("sum_sq"), sumSq, sumSq));
            worst = Math.max(worst, close(name + " min", want.get("min"), nan ? Double.NaN : min, 0));
            worst = Math.max(worst, close(name + " max", want.get("max"), nan ? Double.NaN : max, 0));
        }
        if (want.get("values") instanceof List<?> values) {
            assertEquals(values.size(), v.length, name + " element count");
            for (int i = 0; i < v.length; i++) {
                double w = number(values.get(i));
                assertEquals(0, Double.compare(w, v[i]), name + "[" + i + "]: expected " + w + ", got " + v[i]);
            }
        }
        return worst;
    }

    private static double number(Object o) {
        if (o instanceof Boolean b) {
            return b ? 1 : 0;
        }
        if (o instanceof Number n) {
            return n.doubleValue();
        }
        if (o instanceof Json.BigNumber b) {
            return Double.parseDouble(b.text());
        }
        return switch (String.valueOf(o)) {
            case "nan" -> Double.NaN;
            case "inf" -> Double.POSITIVE_INFINITY;
            case "-inf" -> Double.NEGATIVE_INFINITY;
            default -> Double.parseDouble(String.valueOf(o));
        };
    }

    /** Relative tolerance 1e-9 against the larger of the value and the magnitude of what was summed. */
    private static double close(String what, Object expected, double actual, double scale) {
        if (expected == null) {
            return 0;
        }
        double w = number(expected);
        if (Double.isNaN(w) || Double.isInfinite(w)) {
            assertEquals(0, Double.compare(w, actual), what + ": expected " + w + ", got " + actual);
            return 0;
        }
        double err = Math.abs(actual - w) / Math.max(Math.max(Math.abs(w), scale), Double.MIN_NORMAL);
        assertTrue(err <= 1e-9, what + ": expected " + w + ", got " + actual + " (relative error " + err + ")");
        return err;
    }

    /** Compares a manifest value with an unpickled one; strings stand for values JSON cannot hold (their repr). */
    private static boolean matches(Object want, Object got) {
        if (want == null) {
            return got == null;
        }
        if (want instanceof Json.BigNumber b) {
            return (got instanceof BigInteger || got instanceof Long) && b.text().equals(got.toString());
        }
        if (want instanceof Long l) {
            return got instanceof Long g ? g.longValue() == l : got instanceof BigInteger bi && bi.equals(BigInteger.valueOf(l));
        }
        if (want instanceof Double d) {
            return got instanceof Double g && Double.compare(d, g) == 0;
        }
        if (want instanceof Boolean b) {
            return b.equals(got);
        }
        if (want instanceof String s) {
            if (got instanceof String g) {
                return s.equals(g);
            }
            return s.replaceAll("<[^>]*>", "<tensor>").equals(repr(got));
        }
        if (want instanceof List<?> wl) {
            List<?> gl = got instanceof Pickle.Tuple(List<Object> items) ? items : got instanceof List<?> l ? l : null;
            if (gl == null || gl.size() != wl.size()) {
                return false;
            }
            for (int i = 0; i < wl.size(); i++) {
                if (!matches(wl.get(i), gl.get(i))) {
                    return false;
                }
            }
            return true;
        }
        if (want instanceof Map<?, ?> wm) {
            if (!(got instanceof Map<?, ?> gm) || !gm.keySet().equals(wm.keySet())) {
                return false;
            }
            return wm.entrySet().stream().allMatch(e -> matches(e.getValue(), gm.get(e.getKey())));
        }
        return false;
    }

    /** Python's repr of an unpickled value, with tensors written as {@code <tensor>}. */
    static String repr(Object o) {
        if (o == null) {
            return "None";
        }
        if (o instanceof String s) {
            return "'" + s + "'";
        }
        if (o instanceof Boolean b) {
            return b ? "True" : "False";
        }
        if (o instanceof TorchTensor) {
            return "<tensor>";
        }
        if (o instanceof Pickle.Tuple(List<Object> items)) {
            String inner = String.join(", ", items.stream().map(CheckpointConformanceTest::repr).toList());
            return "(" + inner + (items.size() == 1 ? ",)" : ")");
        }
        if (o instanceof List<?> l) {
            return "[" + String.join(", ", l.stream().map(CheckpointConformanceTest::repr).toList()) + "]";
        }
        if (o instanceof Map<?, ?> m) {
            return "{" + String.join(", ", m.entrySet().stream().map(e -> repr(e.getKey()) + ": " + repr(e.getValue()))
                    .toList()) + "}";
        }
        return String.valueOf(o);
    }

    // ------------------------------------------------------------------ malicious and broken files

    private static String malicious(Path file, Map<?, ?> spec) throws Exception {
        Path marker = spec.get("marker_file") instanceof String m ? Path.of(m) : null;
        if (marker != null) {
            Files.deleteIfExists(marker);
        }
        String outcome;
        try (Checkpoint c = Checkpoints.open(file)) {
            // loaded inertly: the tensors must be exactly the listed ones, the payload none of them
            Map<?, ?> tensors = expectedTensors(file, spec.get("tensors"));
            assertEquals(new java.util.TreeSet<>(castKeys(tensors)), new java.util.TreeSet<>(c.tensors().keySet()),
                    "a malicious file may only yield its legitimate tensors");
            for (Map.Entry<?, ?> e : tensors.entrySet()) {
                checkTensor(c, (String) e.getKey(), (Map<?, ?>) e.getValue());
            }
            outcome = "outcome=loaded-inert";
        } catch (CheckpointFormatException e) {
            assertTrue(e.getMessage().contains(file.toString()), "the error names the file: " + e.getMessage());
            outcome = "outcome=refused";
        }
        if (marker != null) {
            assertFalse(Files.exists(marker), "the payload ran: " + marker + " exists");
        }
        return outcome;
    }

    private static String broken(Path file) {
        try (Checkpoint c = Checkpoints.open(file)) {
            for (StoredTensor t : c.tensors().values()) {
                t.bytes();
            }
        } catch (CheckpointFormatException e) {
            assertTrue(e.getMessage().contains(file.toString()), "the error names the file: " + e.getMessage());
            return "outcome=refused";
        } catch (Throwable t) {
            fail("expected a CheckpointFormatException, got " + t, t);
        }
        fail("a broken file loaded without error");
        return null;
    }
}
