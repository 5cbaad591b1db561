package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.PngWriter;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The full-size SD 1.5-shaped random checkpoint through the whole pipeline: 512×512, 2 steps, batch 2, to PNG. */
class Sd15GenerateTest {
    @Test
    void generatesTwo512PicturesWithTheirParameters(@TempDir Path out) throws Exception {
        Path tokenizer = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("tokenizer");
        Assumptions.assumeTrue(Files.exists(tokenizer.resolve("vocab.json")), "no CLIP vocabulary at " + tokenizer);
        Path file = Sd15Checkpoint.cached(Paths.get("target", "sd15"), StoredType.F16, 1);
        long t0 = System.nanoTime();
        try (CpuBackend cpu = new CpuBackend(); StableDiffusion sd = StableDiffusion.load(cpu, file, tokenizer)) {
            List<GeneratedImage> images = sd.generate(GenerationRequest.builder("a photo of a cat").steps(2).batch(2, 1)
                    .seed(1234).build(), StableDiffusion.ProgressListener.NONE);
            assertEquals(2, images.size());
            for (GeneratedImage img : images) {
                Path png = out.resolve("img-" + img.seed() + ".png");
                PngWriter.write(img, png);
                assertEquals(512, ImageIO.read(png.toFile()).getWidth());
                assertEquals(img.parameters(), PngWriter.parameters(png));
                assertTrue(img.parameters().endsWith("Steps: 2, Sampler: Euler a, Schedule type: Uniform, CFG scale: 7, Seed: "
                        + img.seed() + ", Size: 512x512, Model: sd15-random-f16-1"), img.parameters());
            }
            assertEquals(1235, images.get(1).seed());
        }
        System.out.printf("sd15 random generate 512x512, 2 steps, batch 2: %.1f s; %s%n", (System.nanoTime() - t0) / 1e9,
                MemoryReport.status());
    }
}
