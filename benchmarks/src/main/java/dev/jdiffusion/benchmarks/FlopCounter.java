package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.Tensor;

/**
 * A backend that counts the floating-point operations of a forward pass instead of doing its heavy
 * work: matrix products, linear layers, convolutions and attention return zeros of the right shape
 * and add their multiply-adds (2 FLOPs each) to the count; everything else (norms, activations,
 * elementwise, layout) runs on the wrapped backend and is not counted (well under 1 % of a step).
 */
final class FlopCounter implements Backend {
    private final Backend cheap;
    private double flops;

    FlopCounter(Backend cheap) {
        this.cheap = cheap;
    }

    double flops() {
        return flops;
    }

    @Override
    public String name() {
        return "flop counter over " + cheap.name();
    }

    @Override
    public Tensor upload(Tensor t) {
        return t;
    }

    @Override
    public Tensor toHost(Tensor t) {
        return t;
    }

    @Override
    public Tensor zeros(int... shape) {
        return cheap.zeros(shape);
    }

    @Override
    public Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int n = transB ? b.dim(-2) : b.dim(-1);
        long batch = Math.max(a.numel() / ((long) a.dim(-1) * a.dim(-2)), b.numel() / ((long) b.dim(-1) * b.dim(-2)));
        flops += 2.0 * batch * m * n * k;
        int[] shape = (a.rank() >= b.rank() ? a : b).shape().clone();
        shape[shape.length - 2] = m;
        shape[shape.length - 1] = n;
        return Tensor.zeros(shape);
    }

    @Override
    public Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        long rows = x.numel() / x.dim(-1);
        flops += 2.0 * rows * weight.dim(0) * weight.dim(1);
        int[] shape = x.shape().clone();
        shape[shape.length - 1] = weight.dim(0);
        return Tensor.zeros(shape);
    }

    @Override
    public Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding) {
        int ho = (x.dim(2) + 2 * padding - weight.dim(2)) / stride + 1;
        int wo = (x.dim(3) + 2 * padding - weight.dim(3)) / stride + 1;
        flops += 2.0 * x.dim(0) * weight.dim(0) * ho * wo * weight.dim(1) * weight.dim(2) * weight.dim(3);
        return Tensor.zeros(x.dim(0), weight.dim(0), ho, wo);
    }

    @Override
    public Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, boolean silu) {
        return cheap.groupNorm(x, groups, gamma, beta, eps, silu);
    }

    @Override
    public Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        return cheap.layerNorm(x, gamma, beta, eps);
    }

    @Override
    public Tensor softmax(Tensor x) {
        return cheap.softmax(x);
    }

    @Override
    public Tensor attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal) {
        // q·kᵀ and the weighted sum of v, 2 multiply-adds per (query, key, channel)
        flops += 4.0 * q.dim(0) * q.dim(1) * k.dim(1) * q.dim(2);
        return Tensor.zeros(q.shape());
    }

    @Override
    public Tensor silu(Tensor x) {
        return cheap.silu(x);
    }

    @Override
    public Tensor gelu(Tensor x) {
        return cheap.gelu(x);
    }

    @Override
    public Tensor geluTanh(Tensor x) {
        return cheap.geluTanh(x);
    }

    @Override
    public Tensor quickGelu(Tensor x) {
        return cheap.quickGelu(x);
    }

    @Override
    public Tensor geglu(Tensor x) {
        return cheap.geglu(x);
    }

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return cheap.add(a, b);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return cheap.mul(a, b);
    }

    @Override
    public Tensor scale(Tensor a, float s) {
        return cheap.scale(a, s);
    }

    @Override
    public Tensor upsampleNearest2x(Tensor x) {
        return cheap.upsampleNearest2x(x);
    }

    @Override
    public Tensor concat(int axis, Tensor... xs) {
        return cheap.concat(axis, xs);
    }

    @Override
    public Tensor permute(Tensor x, int... perm) {
        return cheap.permute(x, perm);
    }

    @Override
    public Tensor embedding(Tensor table, int[] ids) {
        return cheap.embedding(table, ids);
    }

    @Override
    public Tensor timestepEmbedding(float[] timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        return cheap.timestepEmbedding(timesteps, dim, maxPeriod, cosFirst, freqShift);
    }

    @Override
    public void close() {
        // the wrapped backend belongs to the caller
    }
}
