package dev.jdiffusion.cli;

import dev.jdiffusion.samplers.SamplerStudy;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import javax.imageio.ImageIO;

/**
 * A log–log plot of error against step count, one line per sampler: deterministic samplers (ODE
 * error) on the left, stochastic ones (variance error) on the right, each with its legend.
 */
final class ErrorPlot {
    static final int WIDTH = 1800;
    static final int HEIGHT = 900;
    private static final int PANEL_W = 560;
    private static final int PANEL_H = 700;
    private static final int TOP = 90;

    private ErrorPlot() {
    }

    /** Writes the plot as a PNG; the file appears complete or not at all. */
    static void write(List<SamplerStudy.Row> rows, String title, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, HEIGHT);
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 22));
            g.drawString(title, 40, 40);
            panel(g, rows, SamplerStudy.Metric.ODE_ERROR, "deterministic: max |x - exact ODE solution|", 90);
            panel(g, rows, SamplerStudy.Metric.VARIANCE_ERROR, "stochastic: |variance / s^2 - 1|", 90 + PANEL_W + 310);
        } finally {
            g.dispose();
        }
        Path dir = png.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, ".plot", ".png");
        try {
            if (!ImageIO.write(img, "png", tmp.toFile())) {
                throw new IOException("no PNG writer available");
            }
            dev.jdiffusion.pipeline.PngWriter.readableByAll(tmp);
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void panel(Graphics2D g, List<SamplerStudy.Row> all, SamplerStudy.Metric metric, String label, int left) {
        List<SamplerStudy.Row> rows = all.stream().filter(r -> r.metric() == metric).toList();
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 16));
        g.setColor(Color.BLACK);
        g.drawString(label, left, TOP - 15);
        g.drawRect(left, TOP, PANEL_W, PANEL_H);
        if (rows.isEmpty()) {
            g.drawString("(none)", left + 20, TOP + 30);
            return;
        }
        int[] steps = rows.get(0).steps();
        double minE = Double.POSITIVE_INFINITY;
        double maxE = 0;
        for (SamplerStudy.Row r : rows) {
            for (double e : r.errors()) {
                if (e > 0 && Double.isFinite(e)) {
                    minE = Math.min(minE, e);
                    maxE = Math.max(maxE, e);
                }
            }
        }
        if (!(maxE > 0)) {
            return;
        }
        double lo = Math.floor(Math.log10(minE));
        double hi = Math.ceil(Math.log10(maxE));
        if (hi <= lo) {
            hi = lo + 1;
        }
        double sLo = Math.log10(steps[0]);
        double sHi = Math.log10(steps[steps.length - 1]);
        if (sHi <= sLo) {
            sHi = sLo + 1;
        }
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        for (int d = (int) lo; d <= hi; d++) {
            int y = y(d, lo, hi);
            g.setColor(new Color(225, 225, 225));
            g.drawLine(left, y, left + PANEL_W, y);
            g.setColor(Color.DARK_GRAY);
            g.drawString("1e" + d, left - 40, y + 4);
        }
        for (int n : steps) {
            int x = x(Math.log10(n), sLo, sHi, left);
            g.setColor(new Color(225, 225, 225));
            g.drawLine(x, TOP, x, TOP + PANEL_H);
            g.setColor(Color.DARK_GRAY);
            g.drawString(Integer.toString(n), x - 8, TOP + PANEL_H + 16);
        }
        g.drawString("steps", left + PANEL_W / 2 - 15, TOP + PANEL_H + 34);
        if (metric == SamplerStudy.Metric.VARIANCE_ERROR) {
            double floor = SamplerStudy.varianceSamplingError();
            int y = y(Math.log10(floor), lo, hi);
            if (y > TOP && y < TOP + PANEL_H) {
                g.setColor(Color.GRAY);
                g.setStroke(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f));
                g.drawLine(left, y, left + PANEL_W, y);
                g.drawString("sampling error of the variance", left + 8, y - 4);
            }
        }
        g.setStroke(new BasicStroke(2f));
        for (int k = 0; k < rows.size(); k++) {
            SamplerStudy.Row r = rows.get(k);
            Color c = Color.getHSBColor((k * 0.618034f) % 1f, 0.85f, k % 2 == 0 ? 0.85f : 0.6f);
            g.setColor(c);
            int px = -1;
            int py = -1;
            for (int i = 0; i < steps.length; i++) {
                double e = r.errors()[i];
                if (!(e > 0) || !Double.isFinite(e)) {
                    px = -1;
                    continue;
                }
                int x = x(Math.log10(steps[i]), sLo, sHi, left);
                int y = y(Math.log10(e), lo, hi);
                if (px >= 0) {
                    g.drawLine(px, py, x, y);
                }
                g.fillOval(x - 3, y - 3, 6, 6);
                px = x;
                py = y;
            }
            int ly = TOP + 10 + k * 15;
            g.drawLine(left + PANEL_W + 12, ly, left + PANEL_W + 32, ly);
            g.setColor(Color.BLACK);
            double order = r.order();
            g.drawString(r.sampler() + (Double.isNaN(order) ? "" : String.format(" (%.2f)", order)),
                    left + PANEL_W + 38, ly + 4);
        }
        g.setStroke(new BasicStroke(1f));
    }

    private static int x(double logSteps, double lo, double hi, int left) {
        return left + (int) Math.round((logSteps - lo) / (hi - lo) * PANEL_W);
    }

    private static int y(double logError, double lo, double hi) {
        return TOP + (int) Math.round((hi - logError) / (hi - lo) * PANEL_H);
    }
}
