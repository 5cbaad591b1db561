package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.PngWriter;
import dev.jdiffusion.pipeline.StableDiffusion;
import dev.jdiffusion.samplers.DiffusionModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The random full-size SD 2.1 (768-v) checkpoint: detected as SD 2.x predicting v, and one 768×768 picture made. */
class Sd21GenerateTest {
    @Test
    void loadsAsSd2WithVPredictionAndGeneratesA768Picture(@TempDir Path out) throws Exception {
        assertEquals(865_910_724L, Sd21Checkpoint.parameters(Sd21Checkpoint.UNET), "SD 2.x UNet2DConditionModel");
        Path tokenizer = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("tokenizer");
        Assumptions.assumeTrue(Files.exists(tokenizer.resolve("vocab.json")), "no CLIP vocabulary at " + tokenizer);
        Path file = Sd21Checkpoint.cached(Paths.get("target", "sd21"), StoredType.F16, 1);
        long t0 = System.nanoTime();
        try (CpuBackend cpu = new CpuBackend(); StableDiffusion sd = StableDiffusion.load(cpu, file, tokenizer)) {
            assertEquals("SD 2.x", sd.family().name());
            assertEquals(DiffusionModel.Parameterization.V_PREDICTION, sd.family().prediction());
            List<GeneratedImage> images = sd.generate(GenerationRequest.builder("a photo of a cat").size(768, 768).steps(1)
                    .sampler("Euler").seed(7).build(), StableDiffusion.ProgressListener.NONE);
            GeneratedImage img = images.get(0);
            Path png = out.resolve("sd21.png");
            PngWriter.write(img, png);
            assertEquals(768, ImageIO.read(png.toFile()).getHeight());
            assertTrue(img.parameters().endsWith("Steps: 1, Sampler: Euler, Schedule type: Uniform, CFG scale: 7, Seed: 7, "
                    + "Size: 768x768, Model: sd21-random-f16-1"), img.parameters());
        }
        System.out.printf("sd21 random generate 768x768, 1 step: %.1f s; %s%n", (System.nanoTime() - t0) / 1e9,
                MemoryReport.status());
    }
}
