package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class VaeInputTest {
    @Test
    void imagesAndLatentsOfTheWrongShapeAreRejectedWithTheShapeTheVaeTakes() throws IOException {
        Path model = Cases.root().resolve("vae/set-b/vae-tiny/model.safetensors");
        Assumptions.assumeTrue(Files.exists(model), "no tiny VAE at " + model);
        try (CpuBackend cpu = new CpuBackend(1); SafetensorsFile f = SafetensorsFile.open(model);
             SafetensorsFile io = SafetensorsFile.open(model.resolveSibling("io.safetensors"))) {
            Vae vae = Vae.load(cpu, Cases.tensors(f), "first_stage_model.");
            assertEquals(2, vae.downsamplingFactor());
            assertEquals(4, vae.latentChannels());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> vae.encode(Tensor.zeros(1, 3, 31, 32), null));
            assertTrue(e.getMessage().contains("multiples of 2"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> vae.decode(Tensor.zeros(1, 3, 8, 8), null));
            assertEquals(16, vae.decode(Tensor.zeros(1, 4, 8, 8), null).dim(2));
            // tiled: one tile is the plain decode; smaller tiles give the full image, close to it away from seams
            Tensor z = io.tensor("latent_unet").toTensor();
            assertArrayEquals(vae.decode(z, null).toFloatArray(), vae.decodeTiled(z, 16, 4).toFloatArray());
            Tensor tiled = vae.decodeTiled(z, 8, 4);
            assertArrayEquals(new int[] {1, 3, 32, 32}, tiled.shape());
            Tensor x = io.tensor("x").toTensor();
            assertArrayEquals(vae.encode(x, null).mean().toFloatArray(), vae.encodeTiled(x, 32, 8).mean().toFloatArray());
            assertArrayEquals(new int[] {1, 4, 16, 16}, vae.encodeTiled(x, 16, 8).mean().shape());
            assertThrows(IllegalArgumentException.class, () -> vae.encodeTiled(x, 15, 8));
        }
    }
}
