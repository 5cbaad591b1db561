package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SamplersCommandTest {

    private static String run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            code = Main.commandLine().execute(args);
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, out);
        return out;
    }

    private static double order(String out, String sampler) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(sampler) + "\\s+ode\\s.*\\s(-?[0-9.]+)$").matcher(out);
        assertTrue(m.find(), "no ode row for " + sampler + " in:\n" + out);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void printsTheErrorTableWithMeasuredOrdersAndWritesThePlot(@TempDir Path dir) throws Exception {
        Path png = dir.resolve("plots/errors.png");
        String out = run("samplers", "--samplers", "Euler,Heun,DPM++ 2M,Euler a,dpmpp_2m", "--steps", "20,40,80",
                "--plot", png.toString());
        assertEquals(1, order(out, "Euler"), 0.1, out);
        assertEquals(2, order(out, "Heun"), 0.2, out);
        assertEquals(2, order(out, "DPM++ 2M"), 0.2, out);
        assertTrue(out.matches("(?s).*\\nEuler a\\s+variance\\s.*"), "Euler a is scored by its variance:\n" + out);
        assertTrue(!out.contains("\ndpmpp_2m "), "ComfyUI's dpmpp_2m is A1111's DPM++ 2M, listed once:\n" + out);
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(ErrorPlot.WIDTH, img.getWidth());
        assertEquals(ErrorPlot.HEIGHT, img.getHeight());
        try (var files = Files.list(png.getParent())) {
            assertEquals(1, files.count(), "only the plot is left in its folder");
        }
    }

    @Test
    void badStepCountsAndUnknownSamplersAreReportedByName() {
        StringWriter err = new StringWriter();
        int code = Main.commandLine().setErr(new PrintWriter(err)).execute("samplers", "--steps", "1,10", "--no-plot");
        assertEquals(2, code);
        assertTrue(err.toString().contains("at least 2"), err.toString());
        err.getBuffer().setLength(0);
        code = Main.commandLine().setErr(new PrintWriter(err)).execute("samplers", "--samplers", "Euler b", "--no-plot");
        assertEquals(2, code);
        assertTrue(err.toString().contains("Euler b"), err.toString());
    }
}
