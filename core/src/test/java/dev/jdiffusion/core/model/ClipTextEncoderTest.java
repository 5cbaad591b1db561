package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ClipTextEncoderTest {
    static final String P = "cond_stage_model.transformer.text_model.";

    private static Tensor rand(Random r, int... shape) {
        int n = 1;
        for (int s : shape) {
            n *= s;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextGaussian() * 0.1);
        }
        return Tensor.of(v, shape);
    }

    /** A two-layer SD 1.x-named encoder of width 8 over a vocabulary of 49408. */
    static Map<String, Tensor> weights() {
        Random r = new Random(3);
        int d = 8;
        Map<String, Tensor> w = new HashMap<>();
        w.put(P + "embeddings.token_embedding.weight", rand(r, 49408, d));
        w.put(P + "embeddings.position_embedding.weight", rand(r, 77, d));
        for (int n = 0; n < 2; n++) {
            String l = P + "encoder.layers." + n + ".";
            for (String ln : new String[] {"layer_norm1", "layer_norm2"}) {
                w.put(l + ln + ".weight", rand(r, d));
                w.put(l + ln + ".bias", rand(r, d));
            }
            for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                w.put(l + "self_attn." + proj + ".weight", rand(r, d, d));
                w.put(l + "self_attn." + proj + ".bias", rand(r, d));
            }
            w.put(l + "mlp.fc1.weight", rand(r, 4 * d, d));
            w.put(l + "mlp.fc1.bias", rand(r, 4 * d));
            w.put(l + "mlp.fc2.weight", rand(r, d, 4 * d));
            w.put(l + "mlp.fc2.bias", rand(r, d));
        }
        w.put(P + "final_layer_norm.weight", rand(r, d));
        w.put(P + "final_layer_norm.bias", rand(r, d));
        return w;
    }

    private static int[] ids(int... body) {
        int[] s = new int[77];
        java.util.Arrays.fill(s, 49407);
        s[0] = 49406;
        System.arraycopy(body, 0, s, 1, body.length);
        return s;
    }

    @Test
    void causalAttentionKeepsEarlierPositionsIndependentOfLaterTokens() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            ClipTextEncoder enc = ClipTextEncoder.load(cpu, weights(), P, 2, ClipTextEncoder.Activation.QUICK_GELU);
            assertEquals(2, enc.layers());
            ClipTextEncoder.Output a = enc.encode(new int[][] {ids(320, 1125, 539), ids(320, 1125, 2368)});
            float[] h = a.lastHiddenState().toFloatArray();
            int row = 77 * 8;
            for (int i = 0; i < 3 * 8; i++) { // positions 0..2 agree, position 3 differs
                assertEquals(h[i], h[row + i], 1e-6f, "position " + i / 8);
            }
            double diff = 0;
            for (int i = 3 * 8; i < 4 * 8; i++) {
                diff += Math.abs(h[i] - h[row + i]);
            }
            assertTrue(diff > 1e-4, "a different token changes its own position");
            // pooled = last hidden state at the first end token (position 4)
            float[] pooled = a.pooled().toFloatArray();
            for (int i = 0; i < 8; i++) {
                assertEquals(h[4 * 8 + i], pooled[i]);
            }
            assertEquals(a.lastHiddenState(), enc.clipSkip(a, 1));
        }
    }

    @Test
    void missingWeightsAndBadInputAreNamed() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            Map<String, Tensor> w = weights();
            w.remove(P + "encoder.layers.1.mlp.fc2.bias");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ClipTextEncoder.load(cpu, w, P, 2, ClipTextEncoder.Activation.QUICK_GELU));
            assertTrue(e.getMessage().contains("encoder.layers.1.mlp.fc2.bias"), e.getMessage());
            assertTrue(assertThrows(IllegalArgumentException.class,
                    () -> ClipTextEncoder.load(cpu, weights(), "model.", 2, ClipTextEncoder.Activation.GELU))
                    .getMessage().contains("no CLIP text encoder"));
            assertThrows(IllegalArgumentException.class,
                    () -> ClipTextEncoder.load(cpu, weights(), P, 3, ClipTextEncoder.Activation.QUICK_GELU));
            ClipTextEncoder enc = ClipTextEncoder.load(cpu, weights(), P, 2, ClipTextEncoder.Activation.QUICK_GELU);
            assertThrows(IllegalArgumentException.class, () -> enc.encode(new int[][] {{49406, 49407}}));
            int[] bad = ids(320);
            bad[3] = 49408;
            assertThrows(IllegalArgumentException.class, () -> enc.encode(new int[][] {bad}));
            ClipTextEncoder.Output out = enc.encode(new int[][] {ids(320)});
            assertThrows(IllegalArgumentException.class, () -> enc.clipSkip(out, 3));
        }
    }
}
