package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class UNetInputTest {
    @Test
    void shapesThatDoNotFitTheNetworkAreRejectedByName() throws IOException {
        Path dir = Cases.root().resolve("unet/sd1-tiny");
        Assumptions.assumeTrue(Files.exists(dir.resolve("model.safetensors")), "no tiny UNet at " + dir);
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(
                Files.readString(dir.resolve("manifest.json")))).get("unet_config"));
        try (CpuBackend cpu = new CpuBackend(1); SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            Map<String, Tensor> w = Cases.tensors(f);
            UNet unet = UNet.load(cpu, w, "model.diffusion_model.", cfg);
            Tensor ctx = Tensor.zeros(1, 77, 64);
            assertArrayEquals(new int[] {1, 4, 8, 12}, unet.forward(Tensor.zeros(1, 4, 8, 12), new float[] {500}, ctx, null, null)
                    .shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(Tensor.zeros(1, 4, 10, 12), new float[] {500}, ctx, null, null));
            assertTrue(e.getMessage().contains("multiples of 4"), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(Tensor.zeros(1, 4, 8, 8), new float[] {500}, Tensor.zeros(1, 77, 32), null, null));
            assertThrows(IllegalArgumentException.class,
                    () -> unet.forward(Tensor.zeros(1, 4, 8, 8), new float[] {500}, ctx, Tensor.zeros(1, 8), null));
            assertThrows(IllegalArgumentException.class, () -> UNet.load(cpu, w, "model.diffusion_model.", UNet.Config.sd1()));
            w.remove("model.diffusion_model.middle_block.1.proj_out.weight");
            IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> UNet.load(cpu, w,
                    "model.diffusion_model.", cfg).forward(Tensor.zeros(1, 4, 8, 8), new float[] {1}, ctx, null, null));
            assertTrue(missing.getMessage().contains("middle_block.1.proj_out.weight"), missing.getMessage());
        }
    }
}
