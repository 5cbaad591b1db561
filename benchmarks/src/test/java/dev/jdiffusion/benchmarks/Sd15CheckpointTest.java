package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.detect.ModelDetector;
import dev.jdiffusion.checkpoint.detect.ModelFamily;
import dev.jdiffusion.checkpoint.detect.Prediction;
import dev.jdiffusion.checkpoint.keys.KeyMap;
import dev.jdiffusion.checkpoint.keys.UNetKeys;
import dev.jdiffusion.checkpoint.keys.VaeKeys;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class Sd15CheckpointTest {
    @Test
    void parameterCountsAreThoseOfStableDiffusion15() {
        // the counts diffusers reports for runwayml/stable-diffusion-v1-5
        assertEquals(859_520_964L, Sd15Checkpoint.parameters(Sd15Checkpoint.UNET), "UNet2DConditionModel");
        assertEquals(83_653_863L, Sd15Checkpoint.parameters(Sd15Checkpoint.VAE), "AutoencoderKL");
        assertEquals(123_060_480L, Sd15Checkpoint.parameters(Sd15Checkpoint.CLIP), "CLIPTextModel");
        // 686 UNet + 248 VAE + 197 text encoder tensors + 12 schedule buffers
        assertEquals(686 + 248 + 197 + 12, Sd15Checkpoint.shapes().size());
    }

    private static Map<String, StoredTensor> lazyTensors(String prefix) {
        Map<String, StoredTensor> m = new LinkedHashMap<>();
        Sd15Checkpoint.shapes().forEach((name, shape) -> {
            if (name.startsWith(prefix)) {
                m.put(name.substring(prefix.length()), StoredTensor.lazy(StoredType.F16, shape, () -> {
                    throw new AssertionError("no data is read to map names");
                }));
            }
        });
        return m;
    }

    @Test
    void everyNameMapsToDiffusersAndTheModelIsDetectedAsSd1() throws Exception {
        KeyMap unet = UNetKeys.ldmToDiffusers(lazyTensors(Sd15Checkpoint.UNET).keySet());
        assertEquals(List.of(), unet.unmapped());
        assertEquals("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                unet.mapped().get("input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"));
        List<String> unmapped = new ArrayList<>();
        Map<String, StoredTensor> vae = VaeKeys.ldmToDiffusers(lazyTensors(Sd15Checkpoint.VAE), unmapped);
        assertEquals(List.of(), unmapped);
        assertArrayEquals(new long[] {512, 512}, vae.get("decoder.mid_block.attentions.0.to_q.weight").shape());

        Map<String, StoredTensor> all = new LinkedHashMap<>();
        Sd15Checkpoint.shapes().forEach((name, shape) -> all.put(name, StoredTensor.lazy(
                Sd15Checkpoint.typeOf(name, StoredType.F16), shape, () -> MemorySegment.NULL)));
        Checkpoint c = new Checkpoint() {
            @Override
            public String source() {
                return "sd15-random";
            }

            @Override
            public Map<String, StoredTensor> tensors() {
                return all;
            }

            @Override
            public Map<String, String> metadata() {
                return Map.of();
            }

            @Override
            public void close() {
            }
        };
        ModelDetector.ModelInfo info = ModelDetector.detect(c);
        assertEquals(ModelFamily.SD1, info.family());
        assertEquals(4, info.inChannels());
        assertEquals(Prediction.EPSILON, info.prediction());
    }

    @Test
    void scheduleBuffersHoldTheRealSchedule() {
        double[] beta = Sd15Checkpoint.betas();
        assertEquals(0.00085, beta[0], 1e-15);
        assertEquals(0.012, beta[999], 1e-15);
        double ac = 1;
        for (double b : beta) {
            ac *= 1 - b;
        }
        // alphas_cumprod[999] of SD 1.5's scaled-linear schedule
        assertEquals(0.0046, ac, 1e-4);
        assertTrue(ac > 0);
    }
}
