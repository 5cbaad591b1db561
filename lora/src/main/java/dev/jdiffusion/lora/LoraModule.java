package dev.jdiffusion.lora;

import java.util.Arrays;
import java.util.Map;

/**
 * One adapted layer of an adapter file and the change it makes to that layer's weight:
 * <ul>
 *   <li>LoRA (kohya {@code lora_down}/{@code lora_up}, PEFT {@code lora_A}/{@code lora_B}, diffusers
 *   {@code lora.down}/{@code lora.up}): ΔW = (alpha / rank) · up · down, where a convolution's down
 *   factor has the layer's kernel and the up factor is 1×1 (LoCon);</li>
 *   <li>LoHa: ΔW = (alpha / rank) · (w1a·w1b) ⊙ (w2a·w2b);</li>
 *   <li>LoKr: ΔW = (alpha / rank) · (w1 ⊗ w2), either factor given whole or as a product (scale 1
 *   when neither is a product);</li>
 *   <li>a full difference ({@code diff}, {@code diff_b} for the bias): ΔW = diff.</li>
 * </ul>
 * Without an alpha the scale is 1. With a DoRA magnitude ({@code dora_scale}) the weight becomes
 * magnitude · (W + ΔW) / ‖W + ΔW‖ (the norm per output row or per input column, as the magnitude's
 * shape says), blended with W by the strength.
 *
 * @param parts the module's tensors by their role ("down", "up", "hada_w1_a", …, "diff", "dora_scale")
 */
public record LoraModule(String name, Kind kind, Map<String, Factor> parts, Double alpha) {
    /** The adapter algorithm. */
    public enum Kind { LORA, LOHA, LOKR, DIFF }

    /** A factor upcast to float32: its values and shape. */
    public record Factor(float[] data, int[] shape) {
        int rows() {
            return shape.length == 0 ? 1 : shape[0];
        }

        /** Everything but the first axis, flattened. */
        int cols() {
            return data.length / Math.max(1, rows());
        }
    }

    public LoraModule {
        parts = Map.copyOf(parts);
    }

    Factor part(String role) {
        Factor f = parts.get(role);
        if (f == null) {
            throw new IllegalArgumentException("LoRA module " + name + " (" + kind + ") lacks its " + role + " tensor");
        }
        return f;
    }

    /** Whether this module changes the layer's bias rather than its weight ({@code diff_b}). */
    public boolean isBias() {
        return kind == Kind.DIFF && parts.containsKey("diff_b") && !parts.containsKey("diff");
    }

    public boolean hasDora() {
        return parts.containsKey("dora_scale");
    }

    /** The rank: the inner dimension of the low-rank product (0 for a full difference). */
    public int rank() {
        return switch (kind) {
            case LORA -> part("down").rows();
            case LOHA -> part("hada_w1_b").rows();
            case LOKR -> parts.containsKey("lokr_w1_b") ? part("lokr_w1_b").rows()
                    : parts.containsKey("lokr_w2_b") ? part("lokr_w2_b").rows() : 0;
            case DIFF -> 0;
        };
    }

    /** alpha / rank, or 1 without an alpha (and for LoKr without a factorised half, and full differences). */
    public double scale() {
        int rank = rank();
        return alpha == null || rank == 0 ? 1 : alpha / rank;
    }

    /** The number of elements of ΔW. */
    long deltaSize() {
        return switch (kind) {
            case LORA -> (long) part("up").rows() * part("down").cols();
            case LOHA -> (long) part("hada_w1_a").rows() * part("hada_w1_b").cols();
            case LOKR -> (long) w1Rows() * w1Cols() * w2().data().length;
            case DIFF -> part(isBias() ? "diff_b" : "diff").data().length;
        };
    }

    /**
     * Adds {@code factor · ΔW} (ΔW including alpha/rank) to rows [rowFrom, rowFrom + ΔW rows) of the
     * row-major weight {@code w} whose rows have {@code cols} elements (a slice for a fused q/k/v projection).
     */
    void addTo(float[] w, int rowFrom, int cols, float factor) {
        float f = (float) (factor * scale());
        switch (kind) {
            case LORA -> product(part("up"), part("down"), w, rowFrom, cols, f, null);
            case LOHA -> {
                Factor a = part("hada_w1_a");
                Factor b = part("hada_w1_b");
                float[] w2 = new float[a.rows() * b.cols()];
                product(part("hada_w2_a"), part("hada_w2_b"), w2, 0, b.cols(), 1, null);
                product(a, b, w, rowFrom, cols, f, w2);
            }
            case LOKR -> kron(w, rowFrom, cols, f);
            case DIFF -> {
                float[] d = part(isBias() ? "diff_b" : "diff").data();
                int base = rowFrom * cols;
                for (int i = 0; i < d.length; i++) {
                    w[base + i] += f * d[i];
                }
            }
        }
    }

    /** w[rowFrom + o, i] += f · (Σ_r a[o, r] b[r, i]) (· hadamard[o, i] when given), float32 as kohya computes it. */
    private static void product(Factor a, Factor b, float[] w, int rowFrom, int cols, float f, float[] hadamard) {
        int rows = a.rows();
        int rank = a.cols();
        int n = b.cols();
        if (b.rows() != rank) {
            throw new IllegalArgumentException("LoRA factors do not chain: " + Arrays.toString(a.shape()) + " and "
                    + Arrays.toString(b.shape()));
        }
        if (n != cols) {
            throw new IllegalArgumentException("a LoRA factor of " + n + " columns for a weight of " + cols);
        }
        float[] row = new float[n];
        float[] ad = a.data();
        float[] bd = b.data();
        for (int o = 0; o < rows; o++) {
            Arrays.fill(row, 0);
            for (int r = 0; r < rank; r++) {
                float u = ad[o * rank + r];
                int off = r * n;
                for (int i = 0; i < n; i++) {
                    row[i] += u * bd[off + i];
                }
            }
            int base = (rowFrom + o) * cols;
            if (hadamard == null) {
                for (int i = 0; i < n; i++) {
                    w[base + i] += f * row[i];
                }
            } else {
                for (int i = 0; i < n; i++) {
                    w[base + i] += f * (row[i] * hadamard[o * n + i]);
                }
            }
        }
    }

    private Factor w1() {
        if (parts.containsKey("lokr_w1")) {
            return part("lokr_w1");
        }
        Factor a = part("lokr_w1_a");
        Factor b = part("lokr_w1_b");
        float[] out = new float[a.rows() * b.cols()];
        product(a, b, out, 0, b.cols(), 1, null);
        return new Factor(out, new int[] {a.rows(), b.cols()});
    }

    private Factor w2() {
        if (parts.containsKey("lokr_w2")) {
            return part("lokr_w2");
        }
        if (parts.containsKey("lokr_t2")) {
            throw new IllegalArgumentException("LoKr module " + name + " uses a Tucker core (lokr_t2), which is not supported");
        }
        Factor a = part("lokr_w2_a");
        Factor b = part("lokr_w2_b");
        float[] out = new float[a.rows() * b.cols()];
        product(a, b, out, 0, b.cols(), 1, null);
        int[] shape = b.shape().length == 4 ? new int[] {a.rows(), b.shape()[1], b.shape()[2], b.shape()[3]}
                : new int[] {a.rows(), b.cols()};
        return new Factor(out, shape);
    }

    private int w1Rows() {
        return parts.containsKey("lokr_w1") ? part("lokr_w1").rows() : part("lokr_w1_a").rows();
    }

    private int w1Cols() {
        return parts.containsKey("lokr_w1") ? part("lokr_w1").cols() : part("lokr_w1_b").cols();
    }

    /** w[(i1·c + i2), (j1·d + j2)·k + s] += f · w1[i1, j1] · w2[i2, j2, s] (kernel positions s kept together). */
    private void kron(float[] w, int rowFrom, int cols, float f) {
        Factor a = w1();
        Factor b = w2();
        int ar = a.rows();
        int ac = a.cols();
        int br = b.rows();
        int bd = b.shape().length > 1 ? b.shape()[1] : 1;
        int k = b.cols() / bd;
        if (ac * bd * k != cols) {
            throw new IllegalArgumentException("LoKr module " + name + " makes rows of " + ac * bd * k + " for a weight of " + cols);
        }
        for (int i1 = 0; i1 < ar; i1++) {
            for (int i2 = 0; i2 < br; i2++) {
                int base = (rowFrom + i1 * br + i2) * cols;
                for (int j1 = 0; j1 < ac; j1++) {
                    float x = f * a.data()[i1 * ac + j1];
                    for (int j2 = 0; j2 < bd; j2++) {
                        int src = (i2 * bd + j2) * k;
                        int dst = base + (j1 * bd + j2) * k;
                        for (int s = 0; s < k; s++) {
                            w[dst + s] += x * b.data()[src + s];
                        }
                    }
                }
            }
        }
    }

    /** The number of rows of ΔW (its first axis). */
    int deltaRows() {
        return switch (kind) {
            case LORA -> part("up").rows();
            case LOHA -> part("hada_w1_a").rows();
            case LOKR -> w1Rows() * (parts.containsKey("lokr_w2") ? part("lokr_w2").rows() : part("lokr_w2_a").rows());
            case DIFF -> part(isBias() ? "diff_b" : "diff").rows();
        };
    }
}
