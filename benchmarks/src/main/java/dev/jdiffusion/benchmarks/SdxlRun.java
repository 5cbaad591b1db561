package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.PngWriter;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.nio.file.Path;

/**
 * One SDXL picture from the random full-size SDXL checkpoint ({@link SdxlCheckpoint}, F16, generated
 * into the folder given first when missing): loaded and detected, 1024×1024, one Euler step with CFG
 * (the UNet on a batch of 2), decoded tile by tile, written to the PNG given second. Prints the
 * family, the seconds of each part and the process's resident memory (now and peak), so the memory
 * of a whole SDXL generation is measured in a process of its own.
 *
 * <pre>java --add-modules jdk.incubator.vector -Xmx2g -cp benchmarks/target/benchmarks.jar \
 *     dev.jdiffusion.benchmarks.SdxlRun DIR TOKENIZER_DIR OUT.png [SIZE]</pre>
 */
public final class SdxlRun {
    private SdxlRun() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: SdxlRun CHECKPOINT_DIR TOKENIZER_DIR OUT.png [SIZE]");
            return;
        }
        int size = args.length > 3 ? Integer.parseInt(args[3]) : 1024;
        long t0 = System.nanoTime();
        Path file = SdxlCheckpoint.cached(Path.of(args[0]), StoredType.F16, 1);
        long t1 = System.nanoTime();
        try (CpuBackend cpu = new CpuBackend(); StableDiffusion sd = StableDiffusion.load(cpu, file, Path.of(args[1]))) {
            System.out.println("family " + sd.family().name() + ", prediction " + sd.family().prediction()
                    + ", default size " + sd.defaultSize());
            long t2 = System.nanoTime();
            GeneratedImage img = sd.generate(GenerationRequest.builder("a photo of a cat").size(size, size).steps(1)
                    .sampler("Euler").seed(7).build(), StableDiffusion.ProgressListener.NONE).get(0);
            long t3 = System.nanoTime();
            PngWriter.write(img, Path.of(args[2]));
            System.out.println("parameters " + img.parameters().replace('\n', '|'));
            System.out.printf("checkpoint %.1f s, load %.1f s, generate %dx%d (1 step, CFG batch 2, tiled decode) %.1f s%n",
                    (t1 - t0) / 1e9, (t2 - t1) / 1e9, size, size, (t3 - t2) / 1e9);
        }
        System.out.println("memory " + MemoryReport.status());
    }
}
