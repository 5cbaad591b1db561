package dev.jdiffusion.lora;

import dev.jdiffusion.core.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.commons.math3.linear.Array2DRowRealMatrix;
import org.apache.commons.math3.linear.EigenDecomposition;
import org.apache.commons.math3.linear.QRDecomposition;
import org.apache.commons.math3.linear.RealMatrix;

/**
 * A LoRA from the difference of two checkpoints (a fine-tune and its base): for every linear and
 * convolution layer that differs, the best rank-r approximation of ΔW = W_tuned − W_base (reshaped
 * to [out, in·kh·kw]) by a truncated SVD, written as kohya does: up = U·S [out, r(, 1, 1)],
 * down = Vᵀ [r, in(, kh, kw)], alpha = r (scale 1). The SVD is randomized (Halko, Martinsson &amp;
 * Tropp 2011: a Gaussian sketch of r + 10 columns, two power iterations, then the small problem
 * exactly with Commons Math), in float64.
 */
public final class LoraExtract {
    private static final int OVERSAMPLE = 10;
    private static final int POWER_ITERATIONS = 2;

    /** One extracted layer: its kohya name and the share of ‖ΔW‖² the rank-r factors carry. */
    public record Layer(String name, String weightKey, double captured, double normSquared) {
    }

    /** The LoRA's tensors (kohya naming, F32) and what each layer captured. */
    public record Result(Map<String, Tensor> tensors, List<Layer> layers) {
        /** The share of the total squared difference (over all layers) that the LoRA carries. */
        public double captured() {
            double all = 0;
            double kept = 0;
            for (Layer l : layers) {
                all += l.normSquared();
                kept += l.captured() * l.normSquared();
            }
            return all == 0 ? 1 : kept / all;
        }
    }

    private LoraExtract() {
    }

    /**
     * Extracts a rank-{@code rank} LoRA; layers whose difference is below {@code minDifference}
     * (largest absolute element) are left out. {@code seed} fixes the random sketch.
     */
    public static Result extract(Map<String, Tensor> base, Map<String, Tensor> tuned, int rank, double minDifference,
                                 long seed) {
        if (rank < 1) {
            throw new IllegalArgumentException("the rank must be at least 1, got " + rank);
        }
        LoraTargets targets = LoraTargets.of(LoraMerge.shapes(base));
        Map<String, Tensor> out = new LinkedHashMap<>();
        List<Layer> layers = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (Map.Entry<LoraTargets.Target, String> e : targets.kohyaNames().entrySet()) {
            LoraTargets.Target t = e.getKey();
            Tensor b = base.get(t.weightKey());
            if (b.rank() != 2 && b.rank() != 4 || t.weightKey().contains("embedding")) {
                continue;
            }
            Tensor u = tuned.get(t.weightKey());
            if (u == null || !Arrays.equals(u.shape(), b.shape())) {
                throw new IllegalArgumentException("the tuned model's " + t.weightKey() + " is "
                        + (u == null ? "missing" : Arrays.toString(u.shape())) + ", the base's " + Arrays.toString(b.shape())
                        + ": are they the same architecture?");
            }
            int rows = t.rows() < 0 ? b.dim(0) : t.rows();
            int cols = (int) (b.numel() / b.dim(0));
            float[] bv = b.toFloatArray();
            float[] uv = u.toFloatArray();
            double[][] d = new double[rows][cols];
            double max = 0;
            double norm = 0;
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    int at = (t.rowFrom() + i) * cols + j;
                    double x = (double) uv[at] - bv[at];
                    d[i][j] = x;
                    max = Math.max(max, Math.abs(x));
                    norm += x * x;
                }
            }
            if (max <= minDifference) {
                continue;
            }
            int r = Math.min(rank, Math.min(rows, cols));
            double[][][] f = truncatedSvd(d, r, rnd);
            double[][] up = f[0];
            double[][] down = f[1];
            double kept = 0;
            for (double[] row : f[2]) {
                kept += row[0] * row[0];
            }
            int[] downShape = b.rank() == 4 ? new int[] {r, b.dim(1), b.dim(2), b.dim(3)} : new int[] {r, cols};
            int[] upShape = b.rank() == 4 ? new int[] {rows, r, 1, 1} : new int[] {rows, r};
            out.put(e.getValue() + ".lora_down.weight", Tensor.of(flat(down), downShape));
            out.put(e.getValue() + ".lora_up.weight", Tensor.of(flat(up), upShape));
            out.put(e.getValue() + ".alpha", Tensor.of(new float[] {r}));
            layers.add(new Layer(e.getValue(), t.weightKey(), norm == 0 ? 1 : Math.min(1, kept / norm), norm));
        }
        return new Result(out, layers);
    }

    private static float[] flat(double[][] m) {
        int cols = m[0].length;
        float[] f = new float[m.length * cols];
        for (int i = 0; i < m.length; i++) {
            for (int j = 0; j < cols; j++) {
                f[i * cols + j] = (float) m[i][j];
            }
        }
        return f;
    }

    /**
     * {up = U_r·S_r [m, r], down = V_rᵀ [r, n], singular values [r][1]} of A [m, n]: a randomized range
     * finder Q (A·Ω, refined by power iterations), then B = QᵀA, whose small Gram matrix B·Bᵀ gives
     * the singular values and left vectors exactly.
     */
    static double[][][] truncatedSvd(double[][] a, int r, SplittableRandom rnd) {
        RealMatrix am = new Array2DRowRealMatrix(a, false);
        int m = a.length;
        int n = a[0].length;
        int k = Math.min(Math.min(m, n), r + OVERSAMPLE);
        double[][] omega = new double[n][k];
        for (double[] row : omega) {
            for (int j = 0; j < k; j++) {
                row[j] = gaussian(rnd);
            }
        }
        RealMatrix q = orthonormal(am.multiply(new Array2DRowRealMatrix(omega, false)));
        for (int it = 0; it < POWER_ITERATIONS; it++) {
            RealMatrix z = orthonormal(q.transpose().multiply(am).transpose());
            q = orthonormal(am.multiply(z));
        }
        RealMatrix b = q.transpose().multiply(am); // [k, n]
        EigenDecomposition eig = new EigenDecomposition(b.multiply(b.transpose()));
        double[] values = eig.getRealEigenvalues();
        Integer[] order = new Integer[values.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(values[y], values[x]));
        double[][] up = new double[m][r];
        double[][] down = new double[r][n];
        double[][] sigma = new double[r][1];
        for (int c = 0; c < r; c++) {
            double s = Math.sqrt(Math.max(0, values[order[c]]));
            sigma[c][0] = s;
            RealMatrix uSmall = new Array2DRowRealMatrix(eig.getEigenvector(order[c]).toArray());
            double[] uCol = q.multiply(uSmall).getColumn(0); // left singular vector of A
            if (s == 0) {
                continue;
            }
            double[] vRow = uSmall.transpose().multiply(b).getRow(0); // uᵀB = s·vᵀ
            for (int i = 0; i < m; i++) {
                up[i][c] = uCol[i] * s;
            }
            for (int j = 0; j < n; j++) {
                down[c][j] = vRow[j] / s;
            }
        }
        return new double[][][] {up, down, sigma};
    }

    private static RealMatrix orthonormal(RealMatrix y) {
        QRDecomposition qr = new QRDecomposition(y);
        return qr.getQ().getSubMatrix(0, y.getRowDimension() - 1, 0, y.getColumnDimension() - 1);
    }

    private static double gaussian(SplittableRandom rnd) {
        double u1 = rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
    }
}
