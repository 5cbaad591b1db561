package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Measures the resident memory of the SD 1.5 model set at work: loads the random full-size
 * checkpoint (F16, mapped), encodes a batch of 2 prompts, runs one UNet step on a 64×64 latent
 * with batch 2, and decodes one 512×512 image (or 2048×2048 with {@code --2048}; {@code --tiled}: in
 * 512-pixel tiles overlapping by 128), then prints the peak resident set size of the process. Run it
 * in a fresh JVM with the heap limit under test:
 * {@code java -Xmx1g -cp benchmarks.jar dev.jdiffusion.benchmarks.ModelMemory [cache-dir] [--tiled] [--2048]}.
 */
public final class ModelMemory {
    private ModelMemory() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 && !args[0].startsWith("--") ? args[0] : "target/sd15");
        boolean tiled = Arrays.asList(args).contains("--tiled");
        int size = Arrays.asList(args).contains("--2048") ? 2048 : 512;
        Path file = Sd15Checkpoint.cached(dir, StoredType.F16, 1);
        System.out.println("after generating/locating the checkpoint: " + MemoryReport.status());
        try (CpuBackend cpu = new CpuBackend(); Sd15Models m = Sd15Models.load(cpu, file)) {
            int[] ids = new int[77];
            Arrays.fill(ids, 49407);
            ids[0] = 49406;
            Tensor context = m.clip.encode(new int[][] {ids, ids}).lastHiddenState();
            m.unet.forward(Tensor.zeros(2, 4, 64, 64), new float[] {999, 999}, context, null, null);
            System.out.println("after CLIP and one UNet step (batch 2, 64x64): " + MemoryReport.status());
            Tensor z = Tensor.zeros(1, 4, size / 8, size / 8);
            Tensor image = tiled ? m.vae.decodeTiled(z, 64, 16) : m.vae.decode(z, null);
            System.out.println("after a VAE decode to " + image.dim(2) + "x" + image.dim(3) + (tiled ? " (tiled)" : "") + ": "
                    + MemoryReport.status() + "; max heap " + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB");
        }
    }
}
