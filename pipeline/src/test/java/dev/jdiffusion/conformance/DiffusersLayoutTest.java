package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.Convert;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.keys.VaeKeys;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The models read diffusers folders through checkpoint-io's name mapping: a conformance model written
 * out as a diffusers folder (or renamed to diffusers names and back) gives the reference output again.
 */
class DiffusersLayoutTest {

    private static Map<String, Tensor> tensors(Checkpoint c) {
        Map<String, Tensor> m = new HashMap<>();
        for (Map.Entry<String, StoredTensor> e : c.tensors().entrySet()) {
            m.put(e.getKey(), e.getValue().toTensor());
        }
        return m;
    }

    @Test
    void theUNetFromADiffusersFolderGivesTheReferenceOutput(@TempDir Path tmp) throws IOException {
        Path dir = Cases.root().resolve("unet/sd1-tiny");
        Assumptions.assumeTrue(Files.exists(dir.resolve("model.safetensors")), "no tiny UNet at " + dir);
        Path folder = tmp.resolve("sd1-tiny-diffusers");
        Convert.convert(dir.resolve("model.safetensors"), folder, null);
        assertTrue(Files.isDirectory(folder.resolve("unet")), "a unet/ component was written");
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) ((Map<?, ?>) Json.parse(
                Files.readString(dir.resolve("manifest.json")))).get("unet_config"));
        try (CpuBackend cpu = new CpuBackend(2); Checkpoint c = Checkpoints.open(folder);
             SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"))) {
            UNet unet = UNet.load(cpu, tensors(c), "model.diffusion_model.", cfg);
            double[] t = io.tensor("timesteps").doubles();
            Tensor eps = unet.forward(io.tensor("x").toTensor(), new float[] {(float) t[0], (float) t[1]},
                    io.tensor("context").toTensor(), null, null);
            Cases.Compare cmp = new Cases.Compare(cpu, 5e-6, 5e-5);
            cmp.compare("eps via diffusers", eps, io.tensor("eps"));
            assertTrue(cmp.failures.isEmpty(), cmp.failures.toString());
        }
    }

    @Test
    void theVaeInDiffusersNamesMappedBackGivesTheReferenceOutput() throws IOException {
        Path dir = Cases.root().resolve("vae/set-b/vae-tiny");
        Assumptions.assumeTrue(Files.exists(dir.resolve("model.safetensors")), "no tiny VAE at " + dir);
        try (CpuBackend cpu = new CpuBackend(2); SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"));
             SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"))) {
            Map<String, StoredTensor> ldm = new HashMap<>();
            f.tensors().forEach((k, v) -> ldm.put(k.substring("first_stage_model.".length()), v));
            List<String> unmapped = new ArrayList<>();
            Map<String, StoredTensor> diffusers = VaeKeys.ldmToDiffusers(ldm, unmapped);
            Map<String, StoredTensor> back = VaeKeys.diffusersToLdm(diffusers, unmapped);
            assertTrue(unmapped.isEmpty(), unmapped.toString());
            Map<String, Tensor> weights = new HashMap<>();
            back.forEach((k, v) -> weights.put("first_stage_model." + k, v.toTensor()));
            Vae vae = Vae.load(cpu, weights, "first_stage_model.");
            Cases.Compare cmp = new Cases.Compare(cpu, 2e-5, 1e-4);
            cmp.compare("decoded_from_mean via diffusers names", vae.decode(vae.encode(io.tensor("x").toTensor(), null).mean(),
                    null), io.tensor("decoded_from_mean"));
            assertTrue(cmp.failures.isEmpty(), cmp.failures.toString());
        }
    }
}
