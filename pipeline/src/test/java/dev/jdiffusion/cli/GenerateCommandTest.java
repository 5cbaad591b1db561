package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import dev.jdiffusion.cuda.CudaProbe;
import org.junit.jupiter.api.Assumptions;
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
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--prediction", "x0", "--output", out)
                .contains("--prediction must be eps or v"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--cfg-rescale", "2", "--output", out)
                .contains("CFG rescale"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--original-size", "1024", "--output", out)
                .contains("--original-size takes two non-negative numbers"));
        assertTrue(fails(dir, "--model", model.toString(), "--prompt", "x", "--refiner-switch-at", "0", "--output", out)
                .contains("switch-at"));
        assertTrue(fails(dir, "--prompt", "x", "--refiner", model.toString(), "--output", out).contains("--refiner needs a --model"));
        assertTrue(fails(dir, "--prompt", "x", "--device", "tpu", "--output", out).contains("unknown device \"tpu\""));
        assertTrue(fails(dir, "--prompt", "x", "--precision", "double", "--output", out).contains("use autocast or full"));
    }

    @Test
    void deviceCudaWithoutAGpuSaysWhyAndWritesNothing(@TempDir Path dir) throws Exception {
        Assumptions.assumeFalse(CudaProbe.probe().available(), "this machine has a CUDA device");
        Files.writeString(dir.resolve("marker"), "");
        String err = fails(dir, "--prompt", "x", "--device", "cuda", "--output", dir.resolve("out.png").toString());
        assertTrue(err.contains("no CUDA device can be used: " + CudaProbe.probe().reason()), err);
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

    private static Path picture(Path file, int w, int h) throws Exception {
        java.awt.image.BufferedImage img = new java.awt.image.BufferedImage(w, h, java.awt.image.BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                img.setRGB(x, y, x < w / 2 ? 0xE02828 : 0x2850DC);
            }
        }
        javax.imageio.ImageIO.write(img, "png", file.toFile());
        return file;
    }

    @Test
    void img2imgStartsFromThePictureAtItsSizeOrResizedToTheGivenOne(@TempDir Path dir) throws Exception {
        Path init = picture(dir.resolve("init.png"), 64, 48);
        Path preview = dir.resolve("preview.png");
        assertEquals(0, Main.commandLine().execute("img2img", "--prompt", "a red circle on a blue background", "--init-image",
                init.toString(), "--denoising-strength", "0.5", "--steps", "8", "--seed", "1", "--preview", preview.toString(),
                "--output", dir.resolve("out.png").toString()));
        java.awt.image.BufferedImage out = javax.imageio.ImageIO.read(dir.resolve("out.png").toFile());
        assertEquals(64, out.getWidth());
        assertEquals(48, out.getHeight());
        String params = dev.jdiffusion.pipeline.PngWriter.parameters(dir.resolve("out.png"));
        assertTrue(params.contains("Size: 64x48") && params.contains("Denoising strength: 0.5, Denoising rule: A1111"), params);
        assertTrue(!Files.exists(preview), "the preview goes when the run ends");
        assertEquals(0, Main.commandLine().execute("img2img", "--prompt", "x", "--init-image", init.toString(), "--width", "32",
                "--height", "32", "--steps", "4", "--output", dir.resolve("small.png").toString()));
        assertEquals(32, javax.imageio.ImageIO.read(dir.resolve("small.png").toFile()).getWidth());

        Path odd = picture(dir.resolve("odd.png"), 50, 50);
        StringWriter err = new StringWriter();
        assertTrue(Main.commandLine().setErr(new PrintWriter(err)).execute("img2img", "--prompt", "x", "--init-image",
                odd.toString(), "--output", dir.resolve("never.png").toString()) != 0);
        assertTrue(err.toString().contains("50x50") && err.toString().contains("--width"), err.toString());
        err = new StringWriter();
        assertTrue(Main.commandLine().setErr(new PrintWriter(err)).execute("img2img", "--prompt", "x", "--output",
                dir.resolve("never.png").toString()) != 0);
        assertTrue(err.toString().contains("--init-image"), err.toString());
        assertTrue(!Files.exists(dir.resolve("never.png")));
    }

    @Test
    void theProgressBarCountsTheStepsOfAllRuns() {
        dev.jdiffusion.pipeline.Progress[] last = new dev.jdiffusion.pipeline.Progress[1];
        dev.jdiffusion.pipeline.DemoModel.generate(dev.jdiffusion.pipeline.GenerationRequest.builder("x").size(32, 32).steps(4)
                .seed(1).batch(1, 2).build(), p -> {
                    if (p.run() == 0 && p.step() == 1) {
                        last[0] = p;
                    }
                    return true;
                });
        assertEquals("[#######-----------------------]  25%  run 1/2  step 2/4  sigma " + String.format(java.util.Locale.ROOT,
                "%.4f", last[0].sigma()), GenerateCommand.bar(last[0], 2));
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
