package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GenerateCommandTest {
    private static String fails(Path dir, String... args) throws Exception {
        StringWriter err = new StringWriter();
        String[] all = new String[args.length + 1];
        all[0] = "generate";
        System.arraycopy(args, 0, all, 1, args.length);
        int code = Main.commandLine().setErr(new PrintWriter(err)).execute(all);
        assertTrue(code != 0, "exit code " + code + " for " + String.join(" ", args));
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "nothing written besides the model stand-in: " + String.join(" ", args));
        }
        return err.toString();
    }

    @Test
    void badInputGetsAClearMessageANonZeroExitAndNoFile(@TempDir Path dir) throws Exception {
        Path model = Files.writeString(dir.resolve("model.safetensors"), "not a checkpoint");
        String out = dir.resolve("out.png").toString();
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--width", "513", "--output", out)
                .contains("multiples of 8"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--steps", "0", "--output", out).contains("steps"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--cfg-scale", "NaN", "--output", out)
                .contains("CFG scale"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--init-image", model.toString(),
                "--output", out).contains("init image"));
        assertTrue(fails(dir, "--model", dir.resolve("missing.safetensors").toString(), "--prompt", "x", "--output", out)
                .contains("missing.safetensors"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--denoising-strength", "1.5", "--init-image",
                model.toString(), "--output", out).length() > 0);
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--output", out).contains("model.safetensors"),
                "an unreadable model names itself");
    }

    @Test
    void withoutAModelTheDemoModelDrawsThePromptAndSaysSo(@TempDir Path dir) throws Exception {
        java.io.PrintStream old = System.out;
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8));
            code = Main.commandLine().execute("generate", "--prompt", "a red circle on a blue background", "--width", "64",
                    "--height", "64", "--steps", "10", "--seed", "3", "--output", dir.resolve("demo.png").toString());
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, code, out);
        assertTrue(out.contains("demo model") && out.contains("not Stable Diffusion"), out);
        String params = dev.jdiffusion.pipeline.PngWriter.parameters(dir.resolve("demo.png"));
        assertTrue(params.startsWith("a red circle on a blue background\nSteps: 10, Sampler: Euler a") && params.contains("Seed: 3"),
                params);
        // --from-png regenerates the same picture from its parameters
        assertEquals(0, Main.commandLine().execute("generate", "--from-png", dir.resolve("demo.png").toString(), "--output",
                dir.resolve("again.png").toString()));
        java.awt.image.BufferedImage a = javax.imageio.ImageIO.read(dir.resolve("demo.png").toFile());
        java.awt.image.BufferedImage b = javax.imageio.ImageIO.read(dir.resolve("again.png").toFile());
        assertEquals(a.getWidth(), b.getWidth());
        for (int y = 0; y < a.getHeight(); y++) {
            for (int x = 0; x < a.getWidth(); x++) {
                assertEquals(a.getRGB(x, y), b.getRGB(x, y), "pixel " + x + "," + y);
            }
        }
        assertEquals(params, dev.jdiffusion.pipeline.PngWriter.parameters(dir.resolve("again.png")));
    }

    @Test
    void outputNamesNeverOverwrite(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("cat.png");
        assertEquals(out, GenerateCommand.freeName(out, 0));
        Files.writeString(out, "");
        assertEquals(dir.resolve("cat-1.png"), GenerateCommand.freeName(out, 0));
        assertEquals(dir.resolve("cat-002.png"), GenerateCommand.freeName(out, 2));
    }
}
