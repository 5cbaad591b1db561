package dev.jdiffusion.core.backend;

import dev.jdiffusion.core.tensor.Tensor;

/**
 * The operations the CLIP text encoders, the UNet and the VAE are written against. A model never
 * knows which backend runs it.
 *
 * <p>Conventions: activations are float32; weight operands ({@code weight}, {@code gamma},
 * {@code beta}, {@code bias}, and either matmul operand) may be stored as F16 or BF16 and are
 * converted where they are consumed. Images are NCHW. Every op returns a new tensor and leaves its
 * inputs untouched. Shape mismatches throw {@link dev.jdiffusion.core.tensor.ShapeException} naming
 * every shape involved.
 */
public interface Backend extends AutoCloseable {

    /** A short name for logs and reports ("cpu", "cuda:0"). */
    String name();

    /** Brings a tensor (host or from another backend) into this backend's memory; a no-op when already there. */
    Tensor upload(Tensor t);

    /**
     * A network's weight into this backend's memory, in the type the backend computes with: by
     * default as stored ({@link #upload}); a GPU in autocast keeps float32 weights as F16, as the
     * Python tools load models in half precision, so that their products run on the tensor cores and
     * take half the memory.
     */
    default Tensor uploadWeight(Tensor t) {
        return upload(t);
    }

    /** A host copy of a tensor of this backend, in its type (activations are float32); a host tensor itself. */
    Tensor toHost(Tensor t);

    /** A new float32 tensor of zeros in this backend's memory. */
    Tensor zeros(int... shape);

    /**
     * The lifetime of a piece of work's temporaries. Memory of every tensor this backend makes on
     * the calling thread while the scope is open is given back when it closes, except the tensors
     * passed to {@link Scope#keep}, which pass to the enclosing scope (or, outside any, to the
     * caller). Scopes nest and close in the reverse order of opening. A model opens one per layer,
     * so that a denoising step reuses the memory of the previous one instead of asking the device
     * for more; on the CPU, where the garbage collector does this, it is a no-op.
     */
    default Scope scope() {
        return Scope.NONE;
    }

    /** See {@link Backend#scope()}. */
    interface Scope extends AutoCloseable {
        /** A scope that tracks nothing (the CPU backend's). */
        Scope NONE = new Scope() {
            @Override
            public Tensor keep(Tensor t) {
                return t;
            }

            @Override
            public void close() {
            }
        };

        /** Lets {@code t} (and every view of its storage) outlive this scope; returns it. */
        Tensor keep(Tensor t);

        @Override
        void close();
    }

    // ---- linear algebra ------------------------------------------------------------------------

    /**
     * Batched matrix product {@code op(a) · op(b)}. {@code a} is {@code [..., M, K]} ({@code [..., K, M]}
     * when {@code transA}), {@code b} is {@code [..., K, N]} ({@code [..., N, K]} when {@code transB}).
     * Leading (batch) axes must be equal, or one operand may have none and is then shared.
     */
    Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB);

    /** {@code x · weightᵀ + bias} over the last axis: x {@code [..., K]}, weight {@code [N, K]}, bias {@code [N]} or null. */
    Tensor linear(Tensor x, Tensor weight, Tensor bias);

    /**
     * 2-D convolution (cross-correlation, as PyTorch): x {@code [N, Cin, H, W]}, weight
     * {@code [Cout, Cin, kH, kW]}, bias {@code [Cout]} or null, the same stride and zero padding on both axes.
     */
    Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding);

    /**
     * {@code linear(x, weight, bias) + residual}: a layer's output joining the residual stream, with
     * {@code residual} of the output's shape exactly (no broadcasting), or null for none. A backend may
     * add it in the product's epilogue (the CUDA backend does) instead of in a separate pass; either
     * way the sum is formed after the bias, so the bits are those of the separate add.
     */
    default Tensor linear(Tensor x, Tensor weight, Tensor bias, Tensor residual) {
        if (residual == null) {
            return linear(x, weight, bias);
        }
        OpShapes.residual("linear", OpShapes.linear(x, weight, bias), residual);
        return add(linear(x, weight, bias), residual);
    }

    /** {@code conv2d(x, weight, bias, stride, padding) + residual}, as {@link #linear(Tensor, Tensor, Tensor, Tensor)}. */
    default Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding, Tensor residual) {
        if (residual == null) {
            return conv2d(x, weight, bias, stride, padding);
        }
        OpShapes.residual("conv2d", OpShapes.conv2d(x, weight, bias, stride, padding), residual);
        return add(conv2d(x, weight, bias, stride, padding), residual);
    }

    // ---- normalisation -------------------------------------------------------------------------

    /** Group normalisation of x {@code [N, C, ...]} with per-channel affine; {@code silu} fuses a SiLU after it. */
    Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, boolean silu);

    /** Layer normalisation over the last axis; gamma and beta may be null. */
    Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps);

    /** Softmax over the last axis. */
    Tensor softmax(Tensor x);

    /**
     * Multi-head scaled dot-product attention. q {@code [B, Nq, H·D]}, k and v {@code [B, Nk, H·D]};
     * returns {@code [B, Nq, H·D]}. Scores are scaled by {@code 1/sqrt(D)}; {@code causal} masks keys
     * after the query's position (CLIP). Never materialises the whole score matrix.
     */
    Tensor attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal);

    // ---- activations ---------------------------------------------------------------------------

    Tensor silu(Tensor x);

    /** GELU with the exact erf form (PyTorch's default). */
    Tensor gelu(Tensor x);

    /** GELU with the tanh approximation. */
    Tensor geluTanh(Tensor x);

    /** {@code x · sigmoid(1.702 x)} (OpenAI CLIP). */
    Tensor quickGelu(Tensor x);

    /** GEGLU: the last axis {@code 2F} is split into value and gate halves; returns {@code value · gelu(gate)}. */
    Tensor geglu(Tensor x);

    /**
     * {@code geglu(linear(x, weight, bias))} as one operation (a transformer's feed-forward
     * projection), which a backend may fuse so that the {@code [..., 2F]} projection is never stored.
     */
    default Tensor linearGeglu(Tensor x, Tensor weight, Tensor bias) {
        return geglu(linear(x, weight, bias));
    }

    // ---- elementwise with broadcasting ---------------------------------------------------------

    /** {@code a + b}, numpy broadcasting (e.g. {@code [N, C, H, W] + [N, C, 1, 1]} or {@code + [C, 1, 1]}). */
    Tensor add(Tensor a, Tensor b);

    /** {@code a · b}, numpy broadcasting. */
    Tensor mul(Tensor a, Tensor b);

    /** {@code a · s}. */
    Tensor scale(Tensor a, float s);

    // ---- layout --------------------------------------------------------------------------------

    /** Nearest-neighbour 2× upsampling of {@code [N, C, H, W]}. */
    Tensor upsampleNearest2x(Tensor x);

    /** Concatenation along {@code axis} (e.g. 1: channels). */
    Tensor concat(int axis, Tensor... xs);

    /** Axis permutation (a copy), e.g. {@code permute(x, 0, 2, 3, 1)} for NCHW → NHWC. */
    Tensor permute(Tensor x, int... perm);

    /** Rows of {@code table [V, D]} for each id: {@code [ids.length, D]}. */
    Tensor embedding(Tensor table, int[] ids);

    /**
     * Sinusoidal timestep embedding {@code [timesteps.length, dim]}: frequencies
     * {@code exp(-ln(maxPeriod)·i/(dim/2 - freqShift))}, cos half first when {@code cosFirst}
     * (LDM's layout), sin first otherwise; an odd {@code dim} is padded with a zero.
     */
    Tensor timestepEmbedding(float[] timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift);

    /** LDM's timestep embedding: max period 10000, cos first, no shift. */
    default Tensor timestepEmbedding(float[] timesteps, int dim) {
        return timestepEmbedding(timesteps, dim, 10000f, true, 0f);
    }

    /**
     * As {@link #timestepEmbedding(float[], int, float, boolean, float)} with the timesteps in a
     * float32 tensor {@code [B]}, in host memory or this backend's (a GPU backend then reads them
     * where they are).
     */
    default Tensor timestepEmbedding(Tensor timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        if (timesteps.rank() != 1) {
            throw new dev.jdiffusion.core.tensor.ShapeException("timestepEmbedding takes timesteps [B], got "
                    + java.util.Arrays.toString(timesteps.shape()));
        }
        return timestepEmbedding(toHost(timesteps).toFloatArray(), dim, maxPeriod, cosFirst, freqShift);
    }

    @Override
    void close();
}
