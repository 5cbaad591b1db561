package dev.jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.tensor.Tensor;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.SingularValueDecomposition;
import org.junit.jupiter.api.Test;

class LoraExtractTest {
    private static final String LINEAR = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight";
    private static final String CONV = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";

    private static float[] random(Random r, int n, double scale) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) (scale * r.nextGaussian());
        }
        return f;
    }

    @Test
    void aLowRankFineTuneComesBackAsALoraThatMergesToIt() {
        Random r = new Random(3);
        Map<String, Tensor> base = new HashMap<>();
        base.put(LINEAR, Tensor.of(random(r, 40 * 24, 1), 40, 24));
        base.put(CONV, Tensor.of(random(r, 16 * 8 * 9, 1), 16, 8, 3, 3));
        base.put("model.diffusion_model.out.0.weight", Tensor.of(random(r, 16, 1), 16));
        Map<String, Tensor> tuned = new HashMap<>(base);
        // rank-3 changes of both layers
        for (String k : List.of(LINEAR, CONV)) {
            Tensor b = base.get(k);
            int rows = b.dim(0);
            int cols = (int) (b.numel() / rows);
            float[] u = random(r, rows * 3, 0.1);
            float[] v = random(r, 3 * cols, 0.1);
            float[] w = b.toFloatArray();
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    for (int c = 0; c < 3; c++) {
                        w[i * cols + j] += u[i * 3 + c] * v[c * cols + j];
                    }
                }
            }
            tuned.put(k, Tensor.of(w, b.shape()));
        }
        LoraExtract.Result full = LoraExtract.extract(base, tuned, 3, 0, 1);
        assertEquals(2, full.layers().size(), "the unchanged norm weight is left out");
        assertTrue(full.captured() > 1 - 1e-9, "captured " + full.captured());
        LoraFile lora = LoraFile.of("extracted", toStored(full.tensors()), Map.of());
        Map<String, Tensor> merged = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(lora, 1))).weights();
        for (String k : List.of(LINEAR, CONV)) {
            float[] want = tuned.get(k).toFloatArray();
            float[] got = merged.get(k).toFloatArray();
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], 1e-5, k + " element " + i);
            }
        }
        String conv = full.layers().stream().filter(l -> l.weightKey().equals(CONV)).findFirst().orElseThrow().name();
        assertEquals(List.of(3, 8, 3, 3), java.util.Arrays.stream(full.tensors().get(conv + ".lora_down.weight").shape())
                .boxed().toList());
        assertEquals(List.of(16, 3, 1, 1), java.util.Arrays.stream(full.tensors().get(conv + ".lora_up.weight").shape())
                .boxed().toList());

        // rank 1 of a rank-3 change keeps the largest singular value's share, as an exact SVD says
        LoraExtract.Result one = LoraExtract.extract(base, tuned, 1, 0, 1);
        for (LoraExtract.Layer layer : one.layers()) {
            Tensor b = base.get(layer.weightKey());
            int rows = b.dim(0);
            int cols = (int) (b.numel() / rows);
            double[][] d = new double[rows][cols];
            float[] bv = b.toFloatArray();
            float[] tv = tuned.get(layer.weightKey()).toFloatArray();
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    d[i][j] = (double) tv[i * cols + j] - bv[i * cols + j];
                }
            }
            double[] s = new SingularValueDecomposition(new Array2DRowRealMatrix(d)).getSingularValues();
            double all = 0;
            for (double x : s) {
                all += x * x;
            }
            assertEquals(s[0] * s[0] / all, layer.captured(), 1e-6, layer.name());
        }
        assertThrows(IllegalArgumentException.class, () -> LoraExtract.extract(base, tuned, 0, 0, 1));
        Map<String, Tensor> other = new HashMap<>(tuned);
        other.put(LINEAR, Tensor.of(new float[40 * 20], 40, 20));
        assertThrows(IllegalArgumentException.class, () -> LoraExtract.extract(base, other, 2, 0, 1));
    }

    private static Map<String, dev.jdiffusion.checkpoint.StoredTensor> toStored(Map<String, Tensor> t) {
        Map<String, dev.jdiffusion.checkpoint.StoredTensor> m = new HashMap<>();
        t.forEach((k, v) -> m.put(k, dev.jdiffusion.checkpoint.StoredTensor.of(v)));
        return m;
    }
}
