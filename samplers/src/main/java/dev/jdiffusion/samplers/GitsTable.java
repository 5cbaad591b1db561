package dev.jdiffusion.samplers;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/** The GITS schedules ({@code gits.txt} beside this class): for each coefficient, one row per step count 2..20. */
final class GitsTable {
    static final int MAX_STEPS = 20;
    private static final Map<Integer, double[][]> ROWS = load();

    private GitsTable() {
    }

    /** The rows of a coefficient (0.80 to 1.50 in steps of 0.05, rounded to two decimals as ComfyUI does). */
    static double[][] rows(double coefficient) {
        long hundredths = Math.round(coefficient * 100);
        double[][] rows = Double.isFinite(coefficient) ? ROWS.get((int) hundredths) : null;
        if (rows == null) {
            throw new IllegalArgumentException("GITS has tables for the coefficients 0.80 to 1.50 in steps of 0.05, not "
                    + coefficient);
        }
        return rows;
    }

    private static Map<Integer, double[][]> load() {
        try (InputStream in = GitsTable.class.getResourceAsStream("gits.txt")) {
            if (in == null) {
                throw new IllegalStateException("gits.txt is missing from the samplers jar");
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
            double[] grid = null;
            Map<Integer, double[][]> rows = new HashMap<>();
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                if (line.startsWith("grid ")) {
                    String[] f = line.substring(5).trim().split(" ");
                    grid = new double[f.length];
                    for (int i = 0; i < f.length; i++) {
                        grid[i] = Double.parseDouble(f[i]);
                    }
                    continue;
                }
                int colon = line.indexOf(':');
                String[] key = line.substring(0, colon).trim().split(" ");
                String[] positions = line.substring(colon + 1).trim().split(" ");
                int coefficient = (int) Math.round(Double.parseDouble(key[0]) * 100);
                int steps = Integer.parseInt(key[1]);
                double[] row = new double[positions.length];
                for (int i = 0; i < row.length; i++) {
                    row[i] = grid[Integer.parseInt(positions[i])];
                }
                if (row.length != steps + 1) {
                    throw new IllegalStateException("gits.txt: " + key[0] + "/" + steps + " has " + row.length + " sigmas");
                }
                rows.computeIfAbsent(coefficient, k -> new double[MAX_STEPS - 1][])[steps - 2] = row;
            }
            return rows;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
