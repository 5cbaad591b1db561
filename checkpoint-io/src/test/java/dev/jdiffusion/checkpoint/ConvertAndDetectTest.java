package dev.jdiffusion.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.detect.ModelDetector;
import dev.jdiffusion.checkpoint.detect.ModelFamily;
import dev.jdiffusion.checkpoint.detect.Prediction;
import dev.jdiffusion.checkpoint.diffusers.DiffusersFolder;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import dev.jdiffusion.checkpoint.torch.TorchCheckpoint;
import dev.jdiffusion.checkpoint.torch.TorchTensor;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConvertAndDetectTest {
    @TempDir
    Path dir;

    static Path conformance(String rel) {
        Path p = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve(rel);
        Assumptions.assumeTrue(Files.exists(p), "no conformance data at " + p);
        return p;
    }

    /** A full tiny model in one file: UNet, VAE and text encoder(s) of the given conformance folders. */
    private Path composite(String name, String... parts) throws IOException {
        Map<String, StoredTensor> all = new LinkedHashMap<>();
        List<Checkpoint> open = new java.util.ArrayList<>();
        try {
            for (String p : parts) {
                Checkpoint c = Checkpoints.open(conformance(p));
                open.add(c);
                // the CLIP case files carry a bare text_projection beside the checkpoint keys; real checkpoints do not
                c.tensors().forEach((k, v) -> {
                    if (k.contains(".")) {
                        all.put(k, v);
                    }
                });
            }
            Path out = dir.resolve(name);
            SafetensorsWriter.writeStored(out, all, Map.of("note", "composite"));
            return out;
        } finally {
            open.forEach(Checkpoint::close);
        }
    }

    private static byte[] bytes(StoredTensor t) {
        return t.bytes().toArray(ValueLayout.JAVA_BYTE);
    }

    private static void assertSameTensors(Checkpoint want, Checkpoint got, String... ignored) {
        Map<String, StoredTensor> w = new LinkedHashMap<>(want.tensors());
        for (String i : ignored) {
            w.remove(i);
        }
        java.util.Set<String> missing = new java.util.TreeSet<>(w.keySet());
        missing.removeAll(got.tensors().keySet());
        java.util.Set<String> extra = new java.util.TreeSet<>(got.tensors().keySet());
        extra.removeAll(w.keySet());
        assertEquals(List.of(), List.copyOf(missing), "missing from " + got.source());
        assertEquals(List.of(), List.copyOf(extra), "unexpected in " + got.source());
        for (Map.Entry<String, StoredTensor> e : w.entrySet()) {
            StoredTensor g = got.tensors().get(e.getKey());
            assertEquals(e.getValue().type(), g.type(), e.getKey());
            assertArrayEquals(e.getValue().shape(), g.shape(), e.getKey());
            assertArrayEquals(bytes(e.getValue()), bytes(g), e.getKey());
        }
    }

    @Test
    void ckptToSafetensorsReadsBackIdentical() throws IOException {
        for (String name : List.of("sd1-tiny.ckpt", "sd1-tiny-legacy-fp16.ckpt", "views.ckpt", "dtypes.ckpt")) {
            Path in = conformance("ckpt/" + name);
            Path out = dir.resolve(name + ".safetensors");
            Convert.convert(in, out, null);
            try (Checkpoint a = Checkpoints.open(in); Checkpoint b = Checkpoints.open(out)) {
                assertTrue(b instanceof SafetensorsFile);
                assertSameTensors(a, b);
                assertEquals(List.copyOf(a.tensors().keySet()), List.copyOf(b.tensors().keySet()), "order kept");
            }
        }
    }

    @Test
    void fp16CastKeepsIntegerBuffers() throws IOException {
        Path in = composite("sd1.safetensors", "unet/sd1-tiny/model.safetensors",
                "clip/sd1-quickgelu-w64-h4-l3/weights.safetensors");
        Path out = dir.resolve("sd1-fp16.safetensors");
        Convert.convert(in, out, StoredType.F16);
        try (Checkpoint a = Checkpoints.open(in); Checkpoint b = Checkpoints.open(out)) {
            for (Map.Entry<String, StoredTensor> e : a.tensors().entrySet()) {
                StoredTensor g = b.tensor(e.getKey());
                StoredType want = e.getValue().type().isFloatingPoint() ? StoredType.F16 : e.getValue().type();
                assertEquals(want, g.type(), e.getKey());
                double[] x = e.getValue().doubles();
                double[] y = g.doubles();
                for (int i = 0; i < x.length; i++) {
                    assertEquals((double) Float.float16ToFloat(Float.floatToFloat16((float) x[i])), y[i], e.getKey());
                }
            }
            assertEquals(StoredType.I64, b.tensor("cond_stage_model.transformer.text_model.embeddings.position_ids").type());
        }
    }

    @Test
    void singleFileToDiffusersFolderAndBack() throws IOException {
        String[][] models = {
            {"sd1", "unet/sd1-tiny/model.safetensors", "clip/sd1-quickgelu-w64-h4-l3/weights.safetensors",
                "vae/tiny-ch32-mult12-rb1/weights.safetensors"},
            {"sd2", "unet/sd2-tiny/model.safetensors", "clip/sd2-gelu-w64-h4-l3/weights.safetensors",
                "vae/tiny-ch32-mult12-rb1/weights.safetensors"},
            {"sdxl", "unet/sdxl-tiny/model.safetensors", "clip/set-b/sdxl-tiny/model.safetensors",
                "vae/tiny-ch32-mult12-rb1/weights.safetensors"},
        };
        ModelFamily[] families = {ModelFamily.SD1, ModelFamily.SD2, ModelFamily.SDXL_BASE};
        for (int i = 0; i < models.length; i++) {
            Path single = composite(models[i][0] + ".safetensors", java.util.Arrays.copyOfRange(models[i], 1, 4));
            Path folder = dir.resolve(models[i][0] + "-diffusers");
            Convert.convert(single, folder, null);
            assertTrue(Files.isRegularFile(folder.resolve("model_index.json")));
            assertTrue(Files.isRegularFile(folder.resolve("unet/diffusion_pytorch_model.safetensors")));
            try (Checkpoint a = Checkpoints.open(single); Checkpoint b = Checkpoints.open(folder)) {
                assertTrue(b instanceof DiffusersFolder);
                // OpenCLIP's contrastive temperature has no place in a diffusers text encoder
                assertSameTensors(a, b, "cond_stage_model.model.logit_scale", "conditioner.embedders.1.model.logit_scale");
                ModelDetector.ModelInfo ia = ModelDetector.detect(a);
                ModelDetector.ModelInfo ib = ModelDetector.detect(b);
                assertEquals(families[i], ia.family(), models[i][0]);
                assertEquals(families[i], ib.family(), models[i][0] + " from diffusers");
                assertEquals(ia.prediction(), ib.prediction());
                assertEquals("diffusers scheduler config", ib.predictionSource());
            }
            // and from the folder back to one file
            Path again = dir.resolve(models[i][0] + "-again.safetensors");
            Convert.convert(folder, again, null);
            try (Checkpoint a = Checkpoints.open(single); Checkpoint b = Checkpoints.open(again)) {
                assertSameTensors(a, b, "cond_stage_model.model.logit_scale", "conditioner.embedders.1.model.logit_scale");
            }
        }
    }

    @Test
    void detectionReadsFamilyInpaintingAndPredictionSources() throws IOException {
        Path sd2 = composite("sd2-unet.safetensors", "unet/sd2-tiny/model.safetensors");
        try (Checkpoint c = Checkpoints.open(sd2)) {
            ModelDetector.ModelInfo info = ModelDetector.detect(c);
            assertEquals(ModelFamily.SD2, info.family(), "linear transformer projections");
            assertEquals(Prediction.V_PREDICTION, info.prediction());
            assertEquals("family default", info.predictionSource());
            assertEquals(Prediction.EPSILON, ModelDetector.detect(c, Prediction.EPSILON).prediction());
        }
        Files.writeString(dir.resolve("sd2-unet.yaml"), "model:\n  params:\n    parameterization: \"eps\"\n");
        try (Checkpoint c = Checkpoints.open(sd2)) {
            ModelDetector.ModelInfo info = ModelDetector.detect(c);
            assertEquals(Prediction.EPSILON, info.prediction());
            assertEquals("yaml config beside the file", info.predictionSource());
        }
        // an inpainting UNet: 9 input channels
        try (Checkpoint base = Checkpoints.open(conformance("unet/sd1-tiny/model.safetensors"))) {
            Map<String, StoredTensor> t = new LinkedHashMap<>(base.tensors());
            t.put("model.diffusion_model.input_blocks.0.0.weight",
                    StoredTensor.of(dev.jdiffusion.core.tensor.Tensor.zeros(32, 9, 3, 3)));
            Path inpaint = dir.resolve("inpaint.safetensors");
            SafetensorsWriter.writeStored(inpaint, t, Map.of());
            try (Checkpoint c = Checkpoints.open(inpaint)) {
                ModelDetector.ModelInfo info = ModelDetector.detect(c);
                assertEquals(ModelFamily.SD1, info.family());
                assertTrue(info.inpainting());
            }
        }
        Path vaeOnly = conformance("vae/tiny-ch32-mult12-rb1/weights.safetensors");
        try (Checkpoint c = Checkpoints.open(vaeOnly)) {
            CheckpointFormatException e = assertThrows(CheckpointFormatException.class, () -> ModelDetector.detect(c));
            assertTrue(e.getMessage().contains("first_stage_model.decoder."), e.getMessage());
            assertTrue(e.getMessage().contains("[64, 64, 1, 1]") || e.getMessage().contains("["), e.getMessage());
        }
    }

    @Test
    void aFailedConversionLeavesNothing() throws IOException {
        Path in = conformance("vae/tiny-ch32-mult12-rb1/weights.safetensors");
        Path folder = dir.resolve("out");
        assertThrows(CheckpointFormatException.class, () -> Convert.convert(in, folder, null));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(), left.toList());
        }
        assertFalse(Files.exists(folder));
    }

    @Test
    void sharedStoragesAreOneObject() throws IOException {
        try (TorchCheckpoint c = TorchCheckpoint.open(conformance("ckpt/dtypes.ckpt"))) {
            Map<?, ?> root = (Map<?, ?>) c.root();
            Object leaf = ((List<?>) ((Map<?, ?>) ((Map<?, ?>) root.get("nested")).get("a")).get("b")).get(0);
            TorchTensor i8 = (TorchTensor) c.tensor("i8");
            assertTrue(leaf instanceof TorchTensor t && t.storage() == i8.storage(), "nested tensor shares i8's storage");
        }
        try (TorchCheckpoint c = TorchCheckpoint.open(conformance("ckpt/broken-missing-storage.ckpt"))) {
            throw new AssertionError("loaded");
        } catch (CheckpointFormatException e) {
            assertTrue(e.getMessage().contains("archive/data/0"), e.getMessage());
        }
    }
}
