package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The parameter lists of the real configurations add up to the published parameter counts of the
 * networks (diffusers' {@code UNet2DConditionModel.num_parameters()}), and carry the names that
 * single-file checkpoints use.
 */
class UNetConfigTest {
    private static long count(UNet.Config c) {
        long n = 0;
        for (int[] shape : c.parameterShapes().values()) {
            long p = 1;
            for (int d : shape) {
                p *= d;
            }
            n += p;
        }
        return n;
    }

    @Test
    void parameterCountsAreThoseOfTheRealNetworks() {
        assertEquals(859_520_964L, count(UNet.Config.sd1()));
        assertEquals(865_910_724L, count(UNet.Config.sd2()));
        assertEquals(2_567_463_684L, count(UNet.Config.sdxl()));
    }

    @Test
    void namesFollowTheCheckpointTree() {
        Map<String, int[]> xl = UNet.Config.sdxl().parameterShapes();
        assertEquals(2816, xl.get("label_emb.0.0.weight")[1]);
        assertTrue(xl.containsKey("input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight"), "ten blocks at the last level");
        assertEquals(2048, xl.get("input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight")[1]);
        assertTrue(!xl.containsKey("input_blocks.1.1.norm.weight"), "no attention at the first level");
        assertEquals(2, xl.get("middle_block.1.proj_in.weight").length, "linear projections");
        Map<String, int[]> sd1 = UNet.Config.sd1().parameterShapes();
        assertEquals(4, sd1.get("input_blocks.1.1.proj_in.weight").length, "1x1 convolutions in SD 1.x");
        assertTrue(!sd1.containsKey("label_emb.0.0.weight"));
        Map<String, int[]> refiner = UNet.Config.sdxlRefiner().parameterShapes();
        assertEquals(2560, refiner.get("label_emb.0.0.weight")[1]);
        assertEquals(1280, refiner.get("input_blocks.4.1.transformer_blocks.3.attn2.to_k.weight")[1]);
    }
}
