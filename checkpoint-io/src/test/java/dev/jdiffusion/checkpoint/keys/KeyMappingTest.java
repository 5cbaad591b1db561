package dev.jdiffusion.checkpoint.keys;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class KeyMappingTest {
    static Path conformance(String rel) {
        Path p = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve(rel);
        Assumptions.assumeTrue(Files.exists(p), "no conformance data at " + p);
        return p;
    }

    /** The weight names of SD 1.5's UNet (4 levels, 2 res blocks each, attention on the first three). */
    static List<String> sd15UnetNames() {
        List<String> names = new ArrayList<>(List.of("time_embed.0.weight", "time_embed.2.weight",
                "input_blocks.0.0.weight", "out.0.weight", "out.2.weight"));
        String[] res = {"in_layers.0.weight", "in_layers.2.weight", "emb_layers.1.weight", "out_layers.0.weight",
            "out_layers.3.weight", "skip_connection.weight"};
        String[] attn = {"norm.weight", "proj_in.weight", "transformer_blocks.0.attn1.to_q.weight", "proj_out.weight"};
        int idx = 1;
        for (int level = 0; level < 4; level++) {
            for (int j = 0; j < 2; j++, idx++) {
                for (String r : res) {
                    names.add("input_blocks." + idx + ".0." + r);
                }
                if (level < 3) {
                    for (String a : attn) {
                        names.add("input_blocks." + idx + ".1." + a);
                    }
                }
            }
            if (level < 3) {
                names.add("input_blocks." + idx++ + ".0.op.weight");
            }
        }
        for (String r : res) {
            names.add("middle_block.0." + r);
            names.add("middle_block.2." + r);
        }
        for (String a : attn) {
            names.add("middle_block.1." + a);
        }
        for (int o = 0; o < 12; o++) {
            int level = o / 3;
            for (String r : res) {
                names.add("output_blocks." + o + ".0." + r);
            }
            boolean hasAttn = level > 0;
            if (hasAttn) {
                for (String a : attn) {
                    names.add("output_blocks." + o + ".1." + a);
                }
            }
            if (o % 3 == 2 && level < 3) {
                names.add("output_blocks." + o + "." + (hasAttn ? 2 : 1) + ".conv.weight");
            }
        }
        return names;
    }

    @Test
    void sd15UnetNamesMatchTheDiffusersConversionTable() {
        List<String> names = sd15UnetNames();
        KeyMap km = UNetKeys.ldmToDiffusers(names);
        assertEquals(List.of(), km.unmapped());
        Map<String, String> m = km.mapped();
        // pairs from the diffusers conversion script's table for SD 1.x
        assertEquals("time_embedding.linear_2.weight", m.get("time_embed.2.weight"));
        assertEquals("conv_in.weight", m.get("input_blocks.0.0.weight"));
        assertEquals("conv_norm_out.weight", m.get("out.0.weight"));
        assertEquals("down_blocks.0.downsamplers.0.conv.weight", m.get("input_blocks.3.0.op.weight"));
        assertEquals("down_blocks.2.downsamplers.0.conv.weight", m.get("input_blocks.9.0.op.weight"));
        assertEquals("down_blocks.3.resnets.0.norm1.weight", m.get("input_blocks.10.0.in_layers.0.weight"));
        assertEquals("down_blocks.3.resnets.1.conv_shortcut.weight", m.get("input_blocks.11.0.skip_connection.weight"));
        assertEquals("down_blocks.1.attentions.1.proj_in.weight", m.get("input_blocks.5.1.proj_in.weight"));
        assertEquals("mid_block.resnets.1.time_emb_proj.weight", m.get("middle_block.2.emb_layers.1.weight"));
        assertEquals("mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                m.get("middle_block.1.transformer_blocks.0.attn1.to_q.weight"));
        assertEquals("up_blocks.0.resnets.2.conv2.weight", m.get("output_blocks.2.0.out_layers.3.weight"));
        assertEquals("up_blocks.0.upsamplers.0.conv.weight", m.get("output_blocks.2.1.conv.weight"));
        assertEquals("up_blocks.1.upsamplers.0.conv.weight", m.get("output_blocks.5.2.conv.weight"));
        assertEquals("up_blocks.2.upsamplers.0.conv.weight", m.get("output_blocks.8.2.conv.weight"));
        assertEquals("up_blocks.3.attentions.2.proj_out.weight", m.get("output_blocks.11.1.proj_out.weight"));
        assertEquals(names.size(), new HashSet<>(m.values()).size(), "diffusers names are distinct");
        KeyMap back = UNetKeys.diffusersToLdm(m.values());
        assertEquals(List.of(), back.unmapped());
        for (String n : names) {
            assertEquals(n, back.mapped().get(m.get(n)), "round trip of " + n);
        }
    }

    private static Set<String> stripped(SafetensorsFile f, String prefix) {
        return f.tensors().keySet().stream().filter(k -> k.startsWith(prefix)).map(k -> k.substring(prefix.length()))
                .collect(Collectors.toCollection(java.util.LinkedHashSet::new));
    }

    @Test
    void tinyUnetsRoundTripThroughDiffusersNames() throws IOException {
        for (String model : List.of("sd1-tiny", "sd2-tiny", "sdxl-tiny")) {
            try (SafetensorsFile f = SafetensorsFile.open(conformance("unet/" + model + "/model.safetensors"))) {
                Set<String> ldm = stripped(f, "model.diffusion_model.");
                KeyMap to = UNetKeys.ldmToDiffusers(ldm);
                assertEquals(List.of(), to.unmapped(), model);
                assertEquals(ldm.size(), new HashSet<>(to.mapped().values()).size(), model + ": distinct names");
                KeyMap back = UNetKeys.diffusersToLdm(to.mapped().values());
                assertEquals(List.of(), back.unmapped(), model);
                for (String k : ldm) {
                    assertEquals(k, back.mapped().get(to.mapped().get(k)), model + ": " + k);
                }
            }
        }
    }

    @Test
    void peftLoraModuleNamesMapOntoTheMergedSingleFileNames() throws IOException {
        // the same LoRA written with diffusers names (PEFT) and merged into single-file names
        Set<String> peft = new TreeSet<>();
        Set<String> merged = new TreeSet<>();
        try (SafetensorsFile lora = SafetensorsFile.open(conformance("lora/sd1-tiny/lora-peft.safetensors"));
             SafetensorsFile m = SafetensorsFile.open(conformance("lora/sd1-tiny/merged-m1.0.safetensors"));
             SafetensorsFile unet = SafetensorsFile.open(conformance("unet/sd1-tiny/model.safetensors"))) {
            for (String k : lora.tensors().keySet()) {
                if (k.startsWith("unet.")) {
                    peft.add(k.substring(5).replaceAll("\\.lora_[AB]\\.weight$", ".weight"));
                }
            }
            for (String k : m.tensors().keySet()) {
                merged.add(k.substring("model.diffusion_model.".length()));
            }
            // the layout comes from the full model, as a loader would have it
            Set<String> hf = new HashSet<>(UNetKeys.ldmToDiffusers(stripped(unet, "model.diffusion_model.")).mapped().values());
            assertTrue(hf.containsAll(peft), "every PEFT module is a diffusers UNet weight");
            List<String> all = new ArrayList<>(hf);
            Map<String, String> toLdm = UNetKeys.diffusersToLdm(all).mapped();
            Set<String> mapped = peft.stream().map(toLdm::get).collect(Collectors.toCollection(TreeSet::new));
            assertEquals(merged, mapped);
        }
    }

    private static byte[] bytes(StoredTensor t) {
        return t.bytes().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    @Test
    void vaeRoundTripsAndItsAttentionBecomesLinear() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(conformance("vae/tiny-ch32-mult12-rb1/weights.safetensors"))) {
            Map<String, StoredTensor> ldm = new LinkedHashMap<>();
            f.tensors().forEach((k, v) -> ldm.put(k.substring("first_stage_model.".length()), v));
            List<String> um = new ArrayList<>();
            Map<String, StoredTensor> hf = VaeKeys.ldmToDiffusers(ldm, um);
            assertEquals(List.of(), um);
            assertEquals(ldm.size(), hf.size());
            assertArrayEquals(new long[] {64, 64}, hf.get("decoder.mid_block.attentions.0.to_q.weight").shape());
            assertTrue(hf.containsKey("decoder.up_blocks.0.upsamplers.0.conv.weight"), hf.keySet().toString());
            assertTrue(hf.containsKey("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"));
            // decoder.up.0 (last in the forward pass) is up_blocks.1 in diffusers
            assertArrayEquals(bytes(ldm.get("decoder.up.0.block.0.nin_shortcut.weight")),
                    bytes(hf.get("decoder.up_blocks.1.resnets.0.conv_shortcut.weight")));
            Map<String, StoredTensor> back = VaeKeys.diffusersToLdm(hf, um);
            assertEquals(List.of(), um);
            assertEquals(ldm.keySet(), back.keySet());
            for (String k : ldm.keySet()) {
                assertArrayEquals(ldm.get(k).shape(), back.get(k).shape(), k);
                assertArrayEquals(bytes(ldm.get(k)), bytes(back.get(k)), k);
            }
        }
    }

    @Test
    void openClipSplitsItsFusedProjectionAndStacksItBack() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(conformance("clip/set-b/sdxl-tiny/model.safetensors"))) {
            String prefix = "conditioner.embedders.1.model.";
            Map<String, StoredTensor> oc = new LinkedHashMap<>();
            f.tensors().forEach((k, v) -> {
                if (k.startsWith(prefix)) {
                    oc.put(k.substring(prefix.length()), v);
                }
            });
            List<String> um = new ArrayList<>();
            Map<String, StoredTensor> hf = ClipKeys.openClipToHf(oc, um);
            assertEquals(List.of(), um);
            StoredTensor fused = oc.get("transformer.resblocks.0.attn.in_proj_weight");
            long c = fused.shape()[1];
            StoredTensor k = hf.get("text_model.encoder.layers.0.self_attn.k_proj.weight");
            assertArrayEquals(new long[] {c, c}, k.shape());
            MemorySegment fb = fused.bytes();
            long row = c * fused.type().byteSize();
            assertArrayEquals(fb.asSlice(c * row, c * row).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), bytes(k));
            StoredTensor proj = oc.get("text_projection");
            StoredTensor projT = hf.get("text_projection.weight");
            assertArrayEquals(new long[] {proj.shape()[1], proj.shape()[0]}, projT.shape());
            double[] a = proj.doubles();
            double[] b = projT.doubles();
            long rows = proj.shape()[0];
            long cols = proj.shape()[1];
            for (int r = 0; r < rows; r++) {
                for (int col = 0; col < cols; col++) {
                    assertEquals(a[(int) (r * cols + col)], b[(int) (col * rows + r)]);
                }
            }
            Map<String, StoredTensor> back = ClipKeys.hfToOpenClip(hf, um);
            assertEquals(List.of(), um);
            Set<String> want = new TreeSet<>(oc.keySet());
            want.remove("logit_scale");
            assertEquals(want, new TreeSet<>(back.keySet()));
            for (String key : want) {
                assertEquals(oc.get(key).type(), back.get(key).type());
                assertArrayEquals(bytes(oc.get(key)), bytes(back.get(key)), key);
            }
        }
    }

    @Test
    void transformsRefuseImpossibleShapes() {
        StoredTensor t = StoredTensor.of(dev.jdiffusion.core.tensor.Tensor.of(new float[6], 2, 3));
        assertEquals(StoredType.F32, Transforms.reshape(t, 3, 2).type());
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Transforms.reshape(t, 4, 2));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> Transforms.rows(t, 1, 2));
    }
}
