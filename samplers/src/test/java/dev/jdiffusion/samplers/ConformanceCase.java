package dev.jdiffusion.samplers;

import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/** One conformance case: its manifest, its data file, and helpers to read both. */
final class ConformanceCase implements AutoCloseable {
    final String name;
    final Map<String, Object> manifest;
    final SafetensorsFile data;
    private final Map<String, double[]> decoded = new java.util.HashMap<>();

    @SuppressWarnings("unchecked")
    ConformanceCase(String name, Path manifest) throws IOException {
        this.name = name;
        this.manifest = (Map<String, Object>) Json.parse(Files.readString(manifest));
        Path d = manifest.resolveSibling("data.safetensors");
        this.data = Files.exists(d) ? SafetensorsFile.open(d) : null;
    }

    static Path root() {
        return Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
    }

    boolean has(String tensor) {
        return data != null && data.contains(tensor);
    }

    /** The tensor's values (decoded once per case; callers must not modify the array). */
    double[] tensor(String name) {
        return decoded.computeIfAbsent(name, n -> data.tensor(n).doubles());
    }

    long[] shape(String name) {
        return data.tensor(name).shape();
    }

    /** Row {@code i} of a tensor whose first dimension indexes rows. */
    double[] row(String name, int i) {
        double[] all = tensor(name);
        int rows = (int) shape(name)[0];
        int len = all.length / rows;
        return java.util.Arrays.copyOfRange(all, i * len, (i + 1) * len);
    }

    int rows(String name) {
        return (int) shape(name)[0];
    }

    @SuppressWarnings("unchecked")
    Map<String, Object> map(String... path) {
        Object o = manifest;
        for (String p : path) {
            o = ((Map<String, Object>) o).get(p);
        }
        return (Map<String, Object>) o;
    }

    static double num(Object o) {
        if (o instanceof Number n) {
            return n.doubleValue();
        }
        if (o instanceof Json.BigNumber b) {
            return Double.parseDouble(b.text());
        }
        if (o instanceof String s) {
            return switch (s) {
                case "inf" -> Double.POSITIVE_INFINITY;
                case "-inf" -> Double.NEGATIVE_INFINITY;
                case "nan" -> Double.NaN;
                default -> Double.parseDouble(s);
            };
        }
        throw new IllegalArgumentException("not a number: " + o);
    }

    static double num(Map<String, Object> m, String key, double fallback) {
        return m.containsKey(key) ? num(m.get(key)) : fallback;
    }

    /** v·s, a new array (the reference's x_t and the samplers' x/√ᾱ differ by such a factor). */
    static double[] scale(double[] v, double s) {
        double[] r = new double[v.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = v[i] * s;
        }
        return r;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object o) {
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Object o) {
        return (List<Object>) o;
    }

    @Override
    public void close() {
        if (data != null) {
            data.close();
        }
    }
}
