package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The random full-size SDXL checkpoint: detected as SDXL and one 1024×1024 picture made (one Euler
 * step with CFG, tiled VAE decode), in a JVM of its own with a 2 GB heap so that its peak resident
 * memory is the generation's alone: it must stay under 8 GiB with the F16 weights mapped.
 */
class SdxlGenerateTest {
    @Test
    void loadsAsSdxlAndGeneratesA1024PictureUnder8GiB(@TempDir Path out) throws Exception {
        assertEquals(2_567_463_684L, SdxlCheckpoint.parameters(SdxlCheckpoint.UNET), "SDXL UNet2DConditionModel");
        assertEquals(123_060_480L, SdxlCheckpoint.parameters(SdxlCheckpoint.CLIP_L), "CLIPTextModel");
        assertEquals(694_659_840L, SdxlCheckpoint.parameters(SdxlCheckpoint.BIG_G),
                "OpenCLIP bigG text tower with its projection (CLIPTextModelWithProjection)");
        Path tokenizer = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("tokenizer");
        Assumptions.assumeTrue(Files.exists(tokenizer.resolve("vocab.json")), "no CLIP vocabulary at " + tokenizer);
        Path png = out.resolve("sdxl.png");
        List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx2g",
                "-cp", System.getProperty("java.class.path"), SdxlRun.class.getName(),
                Paths.get("target", "sdxl").toAbsolutePath().toString(), tokenizer.toAbsolutePath().toString(), png.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(p.waitFor(20, TimeUnit.MINUTES), "finished");
        System.out.println(log.strip());
        assertEquals(0, p.exitValue(), log);
        assertTrue(log.contains("family SDXL, prediction EPSILON, default size 1024"), log);
        assertTrue(log.contains("Size: 1024x1024, Model: sdxl-random-f16-1"), log);
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(1024, img.getWidth());
        assertEquals(1024, img.getHeight());
        Matcher peak = Pattern.compile("peak (-?\\d+) MiB").matcher(log);
        assertTrue(peak.find(), log);
        long mib = Long.parseLong(peak.group(1));
        if (mib > 0) {
            assertTrue(mib < 8192, "peak resident memory " + mib + " MiB");
        }
    }
}
