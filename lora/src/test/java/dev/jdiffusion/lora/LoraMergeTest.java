package dev.jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Each adapter kind's change against a float64 reference written from its formula. */
class LoraMergeTest {
    private static final String Q = "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj";
    private static final Random RND = new Random(7);

    private static double[] random(int n) {
        double[] d = new double[n];
        for (int i = 0; i < n; i++) {
            d[i] = RND.nextGaussian();
        }
        return d;
    }

    private static Tensor tensor(double[] d, int... shape) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return Tensor.of(f, shape);
    }

    /** A file of the given tensors (name, values, shape), all F32. */
    private static LoraFile file(Object... nameValuesShape) {
        Map<String, StoredTensor> t = new LinkedHashMap<>();
        for (int i = 0; i < nameValuesShape.length; i += 3) {
            t.put((String) nameValuesShape[i], StoredTensor.of(tensor((double[]) nameValuesShape[i + 1], (int[]) nameValuesShape[i + 2])));
        }
        return LoraFile.of("test", t, Map.of());
    }

    private static double[] matmul(double[] a, double[] b, int n, int k, int m) {
        double[] c = new double[n * m];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < m; j++) {
                for (int r = 0; r < k; r++) {
                    c[i * m + j] += a[i * k + r] * b[r * m + j];
                }
            }
        }
        return c;
    }

    private static void close(double[] want, Tensor got, double tol) {
        float[] g = got.toFloatArray();
        assertEquals(want.length, g.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], g[i], tol * (1 + Math.abs(want[i])), "element " + i);
        }
    }

    @Test
    void loraInEveryNamingChangesTheSameWeight() {
        double[] w = random(6 * 4);
        double[] down = random(2 * 4);
        double[] up = random(6 * 2);
        Map<String, Tensor> base = Map.of(Q + ".weight", tensor(w, 6, 4));
        double[] ref = w.clone();
        double[] d = matmul(up, down, 6, 2, 4);
        for (int i = 0; i < ref.length; i++) {
            ref[i] += 0.8 * (3.0 / 2) * d[i];
        }
        double[] alpha = {3};
        for (LoraFile f : List.of(
                file("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", down, new int[] {2, 4},
                        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", up, new int[] {6, 2},
                        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", alpha, new int[0]),
                file("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", down, new int[] {2, 4},
                        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", up, new int[] {6, 2},
                        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.alpha", alpha, new int[0]),
                file("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora.down.weight", down, new int[] {2, 4},
                        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora.up.weight", up, new int[] {6, 2},
                        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.alpha", alpha, new int[0]))) {
            LoraMerge.Merged m = LoraMerge.merge(base, List.of(new LoraMerge.Applied(f, 0.1, 0.8)));
            close(ref, m.weights().get(Q + ".weight"), 1e-6);
            assertSame(base.get(Q + ".weight"), m.unmerge().get(Q + ".weight"));
        }
        assertArrayEquals(new String[] {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", "down"},
                LoraFile.split("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight"));
        assertEquals("up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0",
                LoraFile.split("up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.up.weight")[0]);
    }

    @Test
    void lohaLokrDiffAndDoraFollowTheirFormulas() {
        double[] w = random(6 * 4);
        Map<String, Tensor> base = new HashMap<>(Map.of(Q + ".weight", tensor(w, 6, 4), Q + ".bias", tensor(random(6), 6)));
        String n = "lora_te_text_model_encoder_layers_0_self_attn_q_proj";
        // LoHa: (w1a w1b) ⊙ (w2a w2b) · alpha / rank
        double[] w1a = random(6 * 2);
        double[] w1b = random(2 * 4);
        double[] w2a = random(6 * 2);
        double[] w2b = random(2 * 4);
        double[] p1 = matmul(w1a, w1b, 6, 2, 4);
        double[] p2 = matmul(w2a, w2b, 6, 2, 4);
        double[] ref = w.clone();
        for (int i = 0; i < ref.length; i++) {
            ref[i] += 0.5 * (1.0 / 2) * p1[i] * p2[i];
        }
        LoraFile loha = file(n + ".hada_w1_a", w1a, new int[] {6, 2}, n + ".hada_w1_b", w1b, new int[] {2, 4},
                n + ".hada_w2_a", w2a, new int[] {6, 2}, n + ".hada_w2_b", w2b, new int[] {2, 4}, n + ".alpha", new double[] {1},
                new int[0]);
        close(ref, LoraMerge.merge(base, List.of(LoraMerge.Applied.of(loha, 0.5))).weights().get(Q + ".weight"), 1e-6);

        // LoKr: w1 ⊗ (w2a w2b) · alpha / rank(w2)
        double[] k1 = random(2 * 2);
        double[] k2a = random(3 * 1);
        double[] k2b = random(1 * 2);
        double[] k2 = matmul(k2a, k2b, 3, 1, 2);
        ref = w.clone();
        for (int i1 = 0; i1 < 2; i1++) {
            for (int i2 = 0; i2 < 3; i2++) {
                for (int j1 = 0; j1 < 2; j1++) {
                    for (int j2 = 0; j2 < 2; j2++) {
                        ref[(i1 * 3 + i2) * 4 + j1 * 2 + j2] += 1.5 * 4 * k1[i1 * 2 + j1] * k2[i2 * 2 + j2];
                    }
                }
            }
        }
        LoraFile lokr = file(n + ".lokr_w1", k1, new int[] {2, 2}, n + ".lokr_w2_a", k2a, new int[] {3, 1},
                n + ".lokr_w2_b", k2b, new int[] {1, 2}, n + ".alpha", new double[] {4}, new int[0]);
        close(ref, LoraMerge.merge(base, List.of(LoraMerge.Applied.of(lokr, 1.5))).weights().get(Q + ".weight"), 1e-6);

        // full differences of weight and bias
        double[] diff = random(24);
        double[] diffB = random(6);
        LoraMerge.Merged full = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(file(n + ".diff", diff, new int[] {6, 4},
                n + ".diff_b", diffB, new int[] {6}), 2)));
        double[] refW = w.clone();
        for (int i = 0; i < refW.length; i++) {
            refW[i] += 2 * diff[i];
        }
        close(refW, full.weights().get(Q + ".weight"), 1e-6);
        float[] b0 = base.get(Q + ".bias").toFloatArray();
        double[] refB = new double[6];
        for (int i = 0; i < 6; i++) {
            refB[i] = b0[i] + 2 * diffB[i];
        }
        close(refB, full.weights().get(Q + ".bias"), 1e-6);

        // DoRA, magnitude per output row: W + s·(m·V/‖V‖ − W), V = W + ΔW
        double[] down = random(2 * 4);
        double[] up = random(6 * 2);
        double[] mag = random(6);
        double[] v = w.clone();
        double[] d = matmul(up, down, 6, 2, 4);
        for (int i = 0; i < v.length; i++) {
            v[i] += d[i];
        }
        ref = w.clone();
        for (int o = 0; o < 6; o++) {
            double norm = 0;
            for (int i = 0; i < 4; i++) {
                norm += v[o * 4 + i] * v[o * 4 + i];
            }
            for (int i = 0; i < 4; i++) {
                ref[o * 4 + i] += 0.6 * (mag[o] * v[o * 4 + i] / Math.sqrt(norm) - w[o * 4 + i]);
            }
        }
        LoraFile dora = file(n + ".lora_down.weight", down, new int[] {2, 4}, n + ".lora_up.weight", up, new int[] {6, 2},
                n + ".dora_scale", mag, new int[] {6, 1});
        close(ref, LoraMerge.merge(base, List.of(LoraMerge.Applied.of(dora, 0.6))).weights().get(Q + ".weight"), 1e-5);
    }

    @Test
    void openClipsFusedProjectionGetsEachThirdAndHalfWeightsStayHalf() {
        String key = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight";
        double[] w = random(12 * 4);
        float[] wf = new float[w.length];
        for (int i = 0; i < w.length; i++) {
            wf[i] = (float) w[i];
        }
        Map<String, Tensor> base = Map.of(key, Tensor.ofHalf(wf, DType.F16, 12, 4));
        double[] down = random(1 * 4);
        double[] up = random(4 * 1);
        LoraFile k = file("lora_te_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight", down, new int[] {1, 4},
                "lora_te_text_model_encoder_layers_0_self_attn_k_proj.lora_up.weight", up, new int[] {4, 1});
        Tensor merged = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(k, 1))).weights().get(key);
        assertEquals(DType.F16, merged.dtype());
        float[] before = base.get(key).toFloatArray();
        float[] after = merged.toFloatArray();
        for (int r = 0; r < 12; r++) {
            for (int c = 0; c < 4; c++) {
                double want = before[r * 4 + c] + (r >= 4 && r < 8 ? up[r - 4] * down[c] : 0);
                assertEquals(want, after[r * 4 + c], 2e-3 * (1 + Math.abs(want)), "row " + r);
            }
        }
    }

    @Test
    void theFastPathFollowsTheFormulaForEveryBlockAndTileShape() {
        // rows: eight-, four- and one-row kernels; columns: full tiles of three vectors and every kind of tail
        for (int[] shape : new int[][] {{21, 200}, {16, 48}, {9, 17}, {64, 1}, {3, 1000}}) {
            int rows = shape[0];
            int cols = shape[1];
            String key = Q + ".weight";
            double[] w = random(rows * cols);
            double[] down = random(5 * cols);
            double[] up = random(rows * 5);
            Map<String, Tensor> base = Map.of(key, tensor(w, rows, cols));
            String n = "lora_te_text_model_encoder_layers_0_self_attn_q_proj";
            LoraFile f = file(n + ".lora_down.weight", down, new int[] {5, cols}, n + ".lora_up.weight", up, new int[] {rows, 5});
            double[] d = matmul(up, down, rows, 5, cols);
            double[] ref = w.clone();
            for (int i = 0; i < ref.length; i++) {
                ref[i] += -0.4 * d[i];
            }
            close(ref, LoraMerge.merge(base, List.of(LoraMerge.Applied.of(f, -0.4))).weights().get(key), 1e-5);
        }
    }

    @Test
    void theFastPathGivesTheSameBitsOnAnyNumberOfThreadsAndMatchesTheFormula() throws Exception {
        String key = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
        double[] w = random(37 * 5 * 9);
        float[] wf = new float[w.length];
        for (int i = 0; i < w.length; i++) {
            wf[i] = (float) w[i];
        }
        Map<String, Tensor> base = Map.of(key, Tensor.ofHalf(wf, DType.F16, 37, 5, 3, 3));
        String n = "lora_unet_input_blocks_1_0_in_layers_2";
        double[] down = random(6 * 45);
        double[] up = random(37 * 6);
        LoraFile f = file(n + ".lora_down.weight", down, new int[] {6, 5, 3, 3}, n + ".lora_up.weight", up, new int[] {37, 6, 1, 1},
                n + ".alpha", new double[] {3}, new int[0]);
        List<LoraMerge.Applied> a = List.of(LoraMerge.Applied.of(f, 0.9));
        float[][] results = new float[3][];
        for (int threads = 1; threads <= 3; threads++) {
            java.util.concurrent.ForkJoinPool pool = new java.util.concurrent.ForkJoinPool(threads);
            try {
                results[threads - 1] = pool.submit(() -> LoraMerge.merge(base, a).weights().get(key).toFloatArray()).get();
            } finally {
                pool.shutdown();
            }
        }
        assertArrayEquals(results[0], results[1]);
        assertArrayEquals(results[0], results[2]);
        float[] before = base.get(key).toFloatArray();
        double[] d = matmul(up, down, 37, 6, 45);
        for (int i = 0; i < before.length; i++) {
            double want = before[i] + 0.9 * 0.5 * d[i];
            assertEquals(want, results[0][i], 2e-3 * (1 + Math.abs(want)), "element " + i);
        }
    }

    @Test
    void unmatchedModulesAreReportedAndOtherFamiliesRefused() {
        Map<String, Tensor> base = Map.of(Q + ".weight", tensor(random(24), 6, 4));
        double[] down = random(8);
        double[] up = random(12);
        LoraFile extra = file("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", down, new int[] {2, 4},
                "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", up, new int[] {6, 2},
                "lora_te_text_model_encoder_layers_9_self_attn_q_proj.lora_down.weight", down, new int[] {2, 4},
                "lora_te_text_model_encoder_layers_9_self_attn_q_proj.lora_up.weight", up, new int[] {6, 2});
        assertEquals(List.of("lora_te_text_model_encoder_layers_9_self_attn_q_proj"),
                LoraMerge.merge(base, List.of(LoraMerge.Applied.of(extra, 1))).unmatched().get("test"));
        LoraFile sdxl = file("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", down, new int[] {2, 4},
                "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", up, new int[] {6, 2});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraMerge.merge(base, List.of(LoraMerge.Applied.of(sdxl, 1))));
        assertTrue(e.getMessage().contains("SDXL"), e.getMessage());
        LoraFile wide = file("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", random(10), new int[] {2, 5},
                "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", up, new int[] {6, 2});
        e = assertThrows(IllegalArgumentException.class, () -> LoraMerge.merge(base, List.of(LoraMerge.Applied.of(wide, 1))));
        assertTrue(e.getMessage().contains(Q + ".weight") && e.getMessage().contains("[6, 4]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> file("model.diffusion_model.out.2.weight", random(4), new int[] {4}));
        assertThrows(IllegalArgumentException.class, () -> LoraMerge.Applied.of(extra, Double.NaN));
    }

    @Test
    void atRunTimeAFullChangeAddsWhatMergingWould() {
        String key = "model.diffusion_model.input_blocks.1.1.proj_in.weight";
        double[] w = random(6 * 4);
        Map<String, Tensor> base = Map.of(key, tensor(w, 6, 4));
        String n = "lora_unet_input_blocks_1_1_proj_in";
        LoraFile loha = file(n + ".hada_w1_a", random(12), new int[] {6, 2}, n + ".hada_w1_b", random(8), new int[] {2, 4},
                n + ".hada_w2_a", random(12), new int[] {6, 2}, n + ".hada_w2_b", random(8), new int[] {2, 4});
        LoraFile lora = file(n + ".lora_down.weight", random(8), new int[] {2, 4}, n + ".lora_up.weight", random(12),
                new int[] {6, 2}, n + ".alpha", new double[] {1}, new int[0]);
        List<LoraMerge.Applied> both = List.of(LoraMerge.Applied.of(loha, 0.7), LoraMerge.Applied.of(lora, -1.2));
        float[] merged = LoraMerge.merge(base, both).weights().get(key).toFloatArray();
        Tensor x = tensor(random(3 * 4), 3, 4);
        try (CpuBackend cpu = new CpuBackend(1)) {
            float[] extra = LoraRuntime.of(base, both).extra(cpu, key, x, false, 1, 0).toFloatArray();
            float[] xs = x.toFloatArray();
            for (int r = 0; r < 3; r++) {
                for (int o = 0; o < 6; o++) {
                    double want = 0;
                    for (int i = 0; i < 4; i++) {
                        want += xs[r * 4 + i] * (merged[o * 4 + i] - w[o * 4 + i]);
                    }
                    assertEquals(want, extra[r * 6 + o], 1e-5 * (1 + Math.abs(want)));
                }
            }
            assertEquals(null, LoraRuntime.of(base, both).extra(cpu, "model.diffusion_model.out.2.weight", x, false, 1, 0));
        }
    }
}
