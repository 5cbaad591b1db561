package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PngWriterTest {
    private static GeneratedImage image(String parameters) {
        byte[] rgb = new byte[3 * 5 * 4];
        for (int i = 0; i < rgb.length; i++) {
            rgb[i] = (byte) (i * 13);
        }
        return new GeneratedImage(rgb, 5, 4, 1, parameters);
    }

    @Test
    void pixelsAndParametersComeBackAsWritten(@TempDir Path dir) throws Exception {
        for (String params : new String[] {"a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 5x4",
            "東京の猫 🐱\nNegative prompt: \"blurry\"\nSteps: 20"}) {
            Path f = dir.resolve("x" + params.length() + ".png");
            GeneratedImage img = image(params);
            PngWriter.write(img, f);
            assertEquals(params, PngWriter.parameters(f));
            BufferedImage read = ImageIO.read(f.toFile());
            assertEquals(5, read.getWidth());
            for (int y = 0; y < 4; y++) {
                for (int x = 0; x < 5; x++) {
                    int i = y * 5 + x;
                    int want = (img.rgb()[i] & 0xFF) << 16 | (img.rgb()[20 + i] & 0xFF) << 8 | img.rgb()[40 + i] & 0xFF;
                    assertEquals(want, read.getRGB(x, y) & 0xFFFFFF, "pixel " + x + "," + y);
                }
            }
        }
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "no temporary files are left");
        }
        BufferedImage plain = new BufferedImage(2, 2, BufferedImage.TYPE_INT_RGB);
        ImageIO.write(plain, "png", dir.resolve("plain.png").toFile());
        assertNull(PngWriter.parameters(dir.resolve("plain.png")));
    }
}
