package dev.jdiffusion.core.backend;

import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Shapes;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Arrays;

/**
 * The shape rules of the {@link Backend} ops, shared by every backend: each method checks its
 * operands (a {@link ShapeException} naming every shape involved) and gives the result's shape, so
 * that all backends accept and refuse the same calls with the same messages.
 */
public final class OpShapes {
    private OpShapes() {
    }

    /**
     * A batched matrix product: result [batch…, m, n] with inner size k; an operand without batch axes
     * is shared by every batch item ({@code batchedA}/{@code batchedB} false).
     */
    public record Matmul(int[] batchShape, int m, int n, int k, boolean batchedA, boolean batchedB) {
        public int batch() {
            return Math.toIntExact(Shapes.numel(batchShape));
        }

        public int[] outShape() {
            int[] out = Arrays.copyOf(batchShape, batchShape.length + 2);
            out[batchShape.length] = m;
            out[batchShape.length + 1] = n;
            return out;
        }
    }

    public static Matmul matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        if (a.rank() < 2 || b.rank() < 2) {
            throw new ShapeException("matmul needs matrices: a " + Shapes.toString(a.shape()) + ", b "
                    + Shapes.toString(b.shape()));
        }
        int m = transA ? a.dim(-1) : a.dim(-2);
        int ka = transA ? a.dim(-2) : a.dim(-1);
        int kb = transB ? b.dim(-1) : b.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        if (ka != kb) {
            throw new ShapeException("matmul: inner dimensions differ: a " + Shapes.toString(a.shape())
                    + (transA ? "ᵀ" : "") + " has K=" + ka + ", b " + Shapes.toString(b.shape()) + (transB ? "ᵀ" : "")
                    + " has K=" + kb);
        }
        int[] batchA = Arrays.copyOf(a.shape(), a.rank() - 2);
        int[] batchB = Arrays.copyOf(b.shape(), b.rank() - 2);
        int[] batchShape;
        if (Arrays.equals(batchA, batchB) || batchB.length == 0) {
            batchShape = batchA;
        } else if (batchA.length == 0) {
            batchShape = batchB;
        } else {
            throw new ShapeException("matmul: batch axes differ: a " + Shapes.toString(a.shape()) + ", b "
                    + Shapes.toString(b.shape()));
        }
        return new Matmul(batchShape, m, n, ka, batchA.length > 0, batchB.length > 0);
    }

    /** x [..., in] times weight [out, in]ᵀ plus bias [out]: the result [..., out]. */
    public static int[] linear(Tensor x, Tensor weight, Tensor bias) {
        if (weight.rank() != 2 || x.rank() < 1 || x.dim(-1) != weight.dim(1)) {
            throw new ShapeException("linear: x " + Shapes.toString(x.shape()) + " does not fit weight "
                    + Shapes.toString(weight.shape()) + " ([out, in] with in = x's last axis)");
        }
        vector(bias, weight.dim(0), "linear bias", weight);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = weight.dim(0);
        return outShape;
    }

    /** Checks that a residual added to an op's output has exactly the output's shape. */
    public static void residual(String op, int[] outShape, Tensor residual) {
        if (!Arrays.equals(outShape, residual.shape())) {
            throw new ShapeException(op + ": residual " + Shapes.toString(residual.shape()) + " is not the output's shape "
                    + Shapes.toString(outShape) + " (a residual is added element by element, not broadcast)");
        }
    }

    /** The result [N, Cout, Ho, Wo] of a 2-D convolution. */
    public static int[] conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding) {
        if (x.rank() != 4 || weight.rank() != 4 || x.dim(1) != weight.dim(1)) {
            throw new ShapeException("conv2d: x " + Shapes.toString(x.shape()) + " ([N, Cin, H, W]) does not fit weight "
                    + Shapes.toString(weight.shape()) + " ([Cout, Cin, kH, kW])");
        }
        if (stride < 1 || padding < 0) {
            throw new IllegalArgumentException("conv2d: stride must be ≥ 1 and padding ≥ 0, got stride " + stride
                    + ", padding " + padding);
        }
        int h = x.dim(2);
        int w = x.dim(3);
        int kh = weight.dim(2);
        int kw = weight.dim(3);
        if (h + 2 * padding < kh || w + 2 * padding < kw) {
            throw new ShapeException("conv2d: kernel " + Shapes.toString(weight.shape()) + " larger than padded input "
                    + Shapes.toString(x.shape()) + " with padding " + padding);
        }
        vector(bias, weight.dim(0), "conv2d bias", weight);
        return new int[] {x.dim(0), weight.dim(0), (h + 2 * padding - kh) / stride + 1, (w + 2 * padding - kw) / stride + 1};
    }

    public static void groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta) {
        if (x.rank() < 2 || groups <= 0 || x.dim(1) % groups != 0) {
            throw new ShapeException("groupNorm: x " + Shapes.toString(x.shape()) + " needs [N, C, ...] with C divisible by "
                    + groups + " groups");
        }
        vector(gamma, x.dim(1), "groupNorm gamma", x);
        vector(beta, x.dim(1), "groupNorm beta", x);
    }

    public static void layerNorm(Tensor x, Tensor gamma, Tensor beta) {
        if (x.rank() < 1) {
            throw new ShapeException("layerNorm needs at least one axis, got " + Shapes.toString(x.shape()));
        }
        vector(gamma, x.dim(-1), "layerNorm gamma", x);
        vector(beta, x.dim(-1), "layerNorm beta", x);
    }

    public static void softmax(Tensor x) {
        if (x.rank() < 1) {
            throw new ShapeException("softmax needs at least one axis, got " + Shapes.toString(x.shape()));
        }
    }

    /** q [B, Nq, H·D], k and v [B, Nk, H·D]; a causal mask needs Nk ≥ Nq. */
    public static void attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal) {
        if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3 || !Arrays.equals(k.shape(), v.shape())
                || q.dim(0) != k.dim(0) || q.dim(2) != k.dim(2) || heads <= 0 || q.dim(2) % heads != 0) {
            throw new ShapeException("attention: q " + Shapes.toString(q.shape()) + ", k " + Shapes.toString(k.shape())
                    + ", v " + Shapes.toString(v.shape()) + " must be [B, Nq, H·D], [B, Nk, H·D], [B, Nk, H·D] with "
                    + heads + " heads dividing the last axis");
        }
        if (causal && q.dim(1) > k.dim(1)) {
            throw new ShapeException("attention: a causal mask needs at least as many keys as queries: q "
                    + Shapes.toString(q.shape()) + ", k " + Shapes.toString(k.shape()));
        }
    }

    /** [..., 2F] (value, gate) to [..., F]. */
    public static int[] geglu(Tensor x) {
        if (x.rank() < 1 || x.dim(-1) % 2 != 0) {
            throw new ShapeException("geglu: the last axis of " + Shapes.toString(x.shape()) + " must be even (value and gate)");
        }
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = x.dim(-1) / 2;
        return outShape;
    }

    /** [N, C, H, W] to [N, C, 2H, 2W]. */
    public static int[] upsampleNearest2x(Tensor x) {
        if (x.rank() != 4) {
            throw new ShapeException("upsampleNearest2x needs [N, C, H, W], got " + Shapes.toString(x.shape()));
        }
        return new int[] {x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)};
    }

    /** The shape of the tensors joined along {@code axis} (negative: from the end). */
    public static int[] concat(int axis, Tensor... xs) {
        if (xs.length == 0) {
            throw new ShapeException("concat needs at least one tensor");
        }
        int rank = xs[0].rank();
        int ax = Shapes.axis(axis, rank);
        int[] outShape = xs[0].shape();
        int total = 0;
        for (Tensor t : xs) {
            int[] s = t.shape();
            boolean ok = s.length == rank;
            for (int i = 0; ok && i < rank; i++) {
                ok = i == ax || s[i] == outShape[i];
            }
            if (!ok) {
                StringBuilder msg = new StringBuilder("concat along axis " + axis + ": shapes do not fit:");
                for (Tensor u : xs) {
                    msg.append(' ').append(Shapes.toString(u.shape()));
                }
                throw new ShapeException(msg.toString());
            }
            total += s[ax];
        }
        outShape[ax] = total;
        return outShape;
    }

    /** An optional per-channel operand (bias, gamma, beta) of n elements. */
    public static void vector(Tensor v, int n, String what, Tensor owner) {
        if (v != null && (v.numel() != n)) {
            throw new ShapeException(what + " " + Shapes.toString(v.shape()) + " must have " + n
                    + " elements to fit " + Shapes.toString(owner.shape()));
        }
    }
}
