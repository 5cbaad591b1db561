package dev.jdiffusion.core.cpu;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.backend.OpShapes;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Shapes;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CPU backend: Vector API kernels on a fixed {@link WorkerPool} sized to the cores. Every op
 * partitions its output so that each element is computed by one task in a fixed order, so results
 * are bit-identical for any number of threads.
 */
public final class CpuBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CpuBackend.class);
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    /** Elements per task of an elementwise op: large enough to amortise scheduling, fixed for determinism. */
    private static final int CHUNK = 1 << 15;

    private final WorkerPool pool;

    /** A backend using all available processors. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this.pool = new WorkerPool(threads);
        LOG.debug("CPU backend: {} threads, {}-bit vectors ({} floats)", threads, S.vectorBitSize(), L);
    }

    public int threads() {
        return pool.threads();
    }

    /** The width of the float vector species the kernels use, in lanes. */
    public static int vectorLanes() {
        return L;
    }

    WorkerPool pool() {
        return pool;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Tensor upload(Tensor t) {
        requireHost(t, "upload");
        return t;
    }

    @Override
    public Tensor toHost(Tensor t) {
        requireHost(t, "toHost");
        return t.isFloatArray() ? t : t.to(DType.F32);
    }

    @Override
    public Tensor zeros(int... shape) {
        return Tensor.zeros(shape);
    }

    @Override
    public void close() {
        pool.close();
    }

    // ---- linear algebra ------------------------------------------------------------------------------

    @Override
    public Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        OpShapes.Matmul mm = OpShapes.matmul(a, b, transA, transB);
        int m = mm.m();
        int n = mm.n();
        int ka = mm.k();
        int batch = mm.batch();
        Tensor out = Tensor.zeros(mm.outShape());
        long strideA = mm.batchedA() ? (long) m * ka : 0;
        long strideB = mm.batchedB() ? (long) ka * n : 0;
        Gemm.Matrix ma = new Gemm.Matrix(requireHost(a, "matmul a"), strideA, a.dim(-1), transA);
        Gemm.Matrix mb = new Gemm.Matrix(requireHost(b, "matmul b"), strideB, b.dim(-1), transB);
        Gemm.multiply(pool, batch, m, n, ka, Gemm.packA(ma), strideA == 0, Gemm.packB(mb), out.floatArray(), 0,
                (long) m * n, n, null, false);
        return out;
    }

    @Override
    public Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        return linear(x, weight, bias, false);
    }

    /** Fused: the projection's value and gate columns are multiplied side by side, GEGLU applied in cache. */
    @Override
    public Tensor linearGeglu(Tensor x, Tensor weight, Tensor bias) {
        return linear(x, weight, bias, true);
    }

    /**
     * {@code x · weightᵀ + bias}, with {@code geglu} followed by GEGLU ({@link Gemm#multiplyGeglu} where
     * the sizes allow, else the two ops).
     */
    private Tensor linear(Tensor x, Tensor weight, Tensor bias, boolean geglu) {
        int[] outShape = OpShapes.linear(x, weight, bias);
        int n = weight.dim(0);
        int k = weight.dim(1);
        int f = n / 2;
        if (geglu && (n % 2 != 0 || !Gemm.gegluFits(f, k))) {
            return geglu(linear(x, weight, bias, false));
        }
        int m = leadingRows(x);
        float[] bv = bias == null ? null : bias.toFloatArray();
        Gemm.PackA pa = Gemm.packA(new Gemm.Matrix(requireHost(x, "linear x"), 0, k, false));
        Gemm.Matrix mb = new Gemm.Matrix(requireHost(weight, "linear weight"), 0, k, true);
        if (!geglu) {
            Tensor out = Tensor.zeros(outShape);
            Gemm.multiply(pool, 1, m, n, k, pa, true, Gemm.packB(mb), out.floatArray(), 0, 0, n, bv, false);
            return out;
        }
        outShape[outShape.length - 1] = f;
        Tensor out = Tensor.zeros(outShape);
        float[] order = null;
        if (bv != null) {
            order = new float[n];
            for (int j = 0; j < n; j++) {
                order[j] = bv[Gemm.gegluOrder(j, f)];
            }
        }
        Gemm.multiplyGeglu(pool, m, f, k, pa, Gemm.packBGeglu(mb, f), order, out.floatArray());
        return out;
    }

    @Override
    public Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding) {
        int[] outShape = OpShapes.conv2d(x, weight, bias, stride, padding);
        int batch = x.dim(0);
        int cin = x.dim(1);
        int h = x.dim(2);
        int w = x.dim(3);
        int cout = weight.dim(0);
        int kh = weight.dim(2);
        int kw = weight.dim(3);
        int ho = outShape[2];
        int wo = outShape[3];
        Tensor out = Tensor.zeros(outShape);
        int plane = ho * wo;
        int k = cin * kh * kw;
        Tensor xin = f32(x, "conv2d x");
        Gemm.PackA pa = Gemm.packA(new Gemm.Matrix(requireHost(weight, "conv2d weight"), 0, k, false));
        Gemm.PackB pb;
        if (kh == 1 && kw == 1 && stride == 1 && padding == 0) {
            pb = Gemm.packB(new Gemm.Matrix(xin, (long) cin * h * w, h * w, false));
        } else {
            pb = Gemm.packIm2col(xin.floatArray(), xin.offset(), cin, h, w, kh, kw, stride, padding, ho, wo);
        }
        Gemm.multiply(pool, batch, cout, plane, k, pa, true, pb, out.floatArray(), 0, (long) cout * plane, plane,
                bias == null ? null : bias.toFloatArray(), true);
        return out;
    }

    /** The product of every axis but the last (the rows of a linear layer's input, even when K is 0). */
    private static int leadingRows(Tensor x) {
        long rows = 1;
        for (int d = 0; d < x.rank() - 1; d++) {
            rows *= x.dim(d);
        }
        return Math.toIntExact(rows);
    }

    // ---- normalisation --------------------------------------------------------------------------------

    @Override
    public Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, boolean silu) {
        OpShapes.groupNorm(x, groups, gamma, beta);
        int batch = x.dim(0);
        int channels = x.dim(1);
        int spatial = Math.toIntExact(Shapes.numel(x.shape(), 2, x.rank()));
        Tensor xin = f32(x, "groupNorm x");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        float[] g = gamma == null ? null : gamma.toFloatArray();
        float[] bt = beta == null ? null : beta.toFloatArray();
        Tensor out = Tensor.zeros(x.shape());
        float[] o = out.floatArray();
        int cpg = channels / groups;
        int groupSize = cpg * spatial;
        pool.parallelFor(batch * groups, t -> {
            int start = t * groupSize;
            double mean = sum(in, inOff + start, groupSize) / groupSize;
            double var = sumSquaredDeviation(in, inOff + start, groupSize, (float) mean) / groupSize;
            float rstd = (float) (1.0 / Math.sqrt(var + eps));
            int gi = t % groups;
            for (int cc = 0; cc < cpg; cc++) {
                int c = gi * cpg + cc;
                float scale = rstd * (g == null ? 1f : g[c]);
                float shift = (bt == null ? 0f : bt[c]) - (float) mean * scale;
                int off = start + cc * spatial;
                affine(in, inOff + off, o, off, spatial, scale, shift, silu);
            }
        });
        return out;
    }

    @Override
    public Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        OpShapes.layerNorm(x, gamma, beta);
        int d = x.dim(-1);
        Tensor xin = f32(x, "layerNorm x");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        float[] g = gamma == null ? null : gamma.toFloatArray();
        float[] b = beta == null ? null : beta.toFloatArray();
        Tensor out = Tensor.zeros(x.shape());
        float[] o = out.floatArray();
        int rows = Math.toIntExact(x.numel() / Math.max(1, d));
        parallelRows(rows, d, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int off = r * d;
                double mean = sum(in, inOff + off, d) / d;
                double var = sumSquaredDeviation(in, inOff + off, d, (float) mean) / d;
                float rstd = (float) (1.0 / Math.sqrt(var + eps));
                float fm = (float) mean;
                int i = 0;
                for (; i < d; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, d);
                    FloatVector v = FloatVector.fromArray(S, in, inOff + off + i, mask).sub(fm).mul(rstd);
                    if (g != null) {
                        v = v.mul(FloatVector.fromArray(S, g, i, mask));
                    }
                    if (b != null) {
                        v = v.add(FloatVector.fromArray(S, b, i, mask));
                    }
                    v.intoArray(o, off + i, mask);
                }
            }
        });
        return out;
    }

    @Override
    public Tensor softmax(Tensor x) {
        OpShapes.softmax(x);
        int d = x.dim(-1);
        Tensor xin = f32(x, "softmax x");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        Tensor out = Tensor.zeros(x.shape());
        float[] o = out.floatArray();
        int rows = Math.toIntExact(x.numel() / Math.max(1, d));
        parallelRows(rows, d, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int off = r * d;
                FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
                for (int i = 0; i < d; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, d);
                    mx = mx.max(FloatVector.fromArray(S, in, inOff + off + i, mask)
                            .blend(Float.NEGATIVE_INFINITY, mask.not()));
                }
                float max = mx.reduceLanes(VectorOperators.MAX);
                FloatVector acc = FloatVector.zero(S);
                for (int i = 0; i < d; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, d);
                    FloatVector e = VecMath.exp(FloatVector.fromArray(S, in, inOff + off + i, mask).sub(max))
                            .blend(0f, mask.not());
                    e.intoArray(o, off + i, mask);
                    acc = acc.add(e);
                }
                float inv = 1f / VecMath.sumLanes(acc);
                for (int i = 0; i < d; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, d);
                    FloatVector.fromArray(S, o, off + i, mask).mul(inv).intoArray(o, off + i, mask);
                }
            }
        });
        return out;
    }

    @Override
    public Tensor attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal) {
        OpShapes.attention(q, k, v, heads, causal);
        Tensor qf = f32(q, "attention q");
        Tensor kf = f32(k, "attention k");
        Tensor vf = f32(v, "attention v");
        Tensor out = Tensor.zeros(q.shape());
        Attention.run(pool, q.dim(0), heads, q.dim(2) / heads, q.dim(1), k.dim(1), qf.floatArray(), (int) qf.offset(),
                kf.floatArray(), (int) kf.offset(), vf.floatArray(), (int) vf.offset(), out.floatArray(), causal);
        return out;
    }

    // ---- activations ------------------------------------------------------------------------------------

    private enum Unary { SILU, GELU, GELU_TANH, QUICK_GELU }

    private Tensor unary(Tensor x, Unary op) {
        Tensor xin = f32(x, op.name().toLowerCase());
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        Tensor out = Tensor.zeros(x.shape());
        float[] o = out.floatArray();
        int n = o.length;
        pool.parallelFor(Gemm.ceilDiv(n, CHUNK), t -> {
            int end = Math.min(n, (t + 1) * CHUNK);
            for (int i = t * CHUNK; i < end; i += L) {
                VectorMask<Float> mask = S.indexInRange(i, end);
                FloatVector v = FloatVector.fromArray(S, in, inOff + i, mask);
                FloatVector r = switch (op) {
                    case SILU -> VecMath.silu(v);
                    case GELU -> VecMath.gelu(v);
                    case GELU_TANH -> VecMath.geluTanh(v);
                    case QUICK_GELU -> VecMath.quickGelu(v);
                };
                r.intoArray(o, i, mask);
            }
        });
        return out;
    }

    @Override
    public Tensor silu(Tensor x) {
        return unary(x, Unary.SILU);
    }

    @Override
    public Tensor gelu(Tensor x) {
        return unary(x, Unary.GELU);
    }

    @Override
    public Tensor geluTanh(Tensor x) {
        return unary(x, Unary.GELU_TANH);
    }

    @Override
    public Tensor quickGelu(Tensor x) {
        return unary(x, Unary.QUICK_GELU);
    }

    @Override
    public Tensor geglu(Tensor x) {
        int[] outShape = OpShapes.geglu(x);
        int two = x.dim(-1);
        int f = two / 2;
        Tensor xin = f32(x, "geglu x");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        Tensor out = Tensor.zeros(outShape);
        float[] o = out.floatArray();
        int rows = Math.toIntExact(x.numel() / Math.max(1, two));
        parallelRows(rows, two, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int src = inOff + r * two;
                int dst = r * f;
                for (int i = 0; i < f; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, f);
                    FloatVector value = FloatVector.fromArray(S, in, src + i, mask);
                    FloatVector gate = FloatVector.fromArray(S, in, src + f + i, mask);
                    value.mul(VecMath.gelu(gate)).intoArray(o, dst + i, mask);
                }
            }
        });
        return out;
    }

    // ---- elementwise with broadcasting --------------------------------------------------------------------

    private enum Binary { ADD, MUL }

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return binary(a, b, Binary.ADD);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return binary(a, b, Binary.MUL);
    }

    @Override
    public Tensor scale(Tensor a, float s) {
        Tensor xin = f32(a, "scale");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        Tensor out = Tensor.zeros(a.shape());
        float[] o = out.floatArray();
        int n = o.length;
        pool.parallelFor(Gemm.ceilDiv(n, CHUNK), t -> {
            int end = Math.min(n, (t + 1) * CHUNK);
            for (int i = t * CHUNK; i < end; i += L) {
                VectorMask<Float> mask = S.indexInRange(i, end);
                FloatVector.fromArray(S, in, inOff + i, mask).mul(s).intoArray(o, i, mask);
            }
        });
        return out;
    }

    private Tensor binary(Tensor a, Tensor b, Binary op) {
        Broadcast bc = Broadcast.of(a.shape(), b.shape(), op.name().toLowerCase());
        Tensor af = f32(a, op + " a");
        Tensor bf = f32(b, op + " b");
        float[] x = af.floatArray();
        float[] y = bf.floatArray();
        int xOff = (int) af.offset();
        int yOff = (int) bf.offset();
        Tensor out = Tensor.zeros(bc.outShape());
        float[] o = out.floatArray();
        int inner = bc.inner();
        int rows = bc.rows();
        parallelRows(rows, inner, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int ao = xOff + bc.offsetA(r);
                int bo = yOff + bc.offsetB(r);
                int oo = r * inner;
                int sa = bc.innerStrideA();
                int sb = bc.innerStrideB();
                for (int i = 0; i < inner; i += L) {
                    VectorMask<Float> mask = S.indexInRange(i, inner);
                    FloatVector va = sa == 1 ? FloatVector.fromArray(S, x, ao + i, mask) : FloatVector.broadcast(S, x[ao]);
                    FloatVector vb = sb == 1 ? FloatVector.fromArray(S, y, bo + i, mask) : FloatVector.broadcast(S, y[bo]);
                    (op == Binary.ADD ? va.add(vb) : va.mul(vb)).intoArray(o, oo + i, mask);
                }
            }
        });
        return out;
    }

    // ---- layout ------------------------------------------------------------------------------------------

    @Override
    public Tensor upsampleNearest2x(Tensor x) {
        int[] outShape = OpShapes.upsampleNearest2x(x);
        int planes = x.dim(0) * x.dim(1);
        int h = x.dim(2);
        int w = x.dim(3);
        Tensor xin = f32(x, "upsample x");
        float[] in = xin.floatArray();
        int inOff = (int) xin.offset();
        Tensor out = Tensor.zeros(outShape);
        float[] o = out.floatArray();
        pool.parallelFor(planes, p -> {
            int src = inOff + p * h * w;
            int dst = p * 4 * h * w;
            for (int y = 0; y < h; y++) {
                int row = dst + 2 * y * 2 * w;
                for (int xx = 0; xx < w; xx++) {
                    float v = in[src + y * w + xx];
                    o[row + 2 * xx] = v;
                    o[row + 2 * xx + 1] = v;
                }
                System.arraycopy(o, row, o, row + 2 * w, 2 * w);
            }
        });
        return out;
    }

    @Override
    public Tensor concat(int axis, Tensor... xs) {
        int[] outShape = OpShapes.concat(axis, xs);
        int rank = outShape.length;
        int ax = Shapes.axis(axis, rank);
        int total = outShape[ax];
        Tensor out = Tensor.zeros(outShape);
        float[] o = out.floatArray();
        int outer = Math.toIntExact(Shapes.numel(outShape, 0, ax));
        int innerUnit = Math.toIntExact(Shapes.numel(outShape, ax + 1, rank));
        int outRow = total * innerUnit;
        int pos = 0;
        for (Tensor t : xs) {
            int block = t.dim(ax) * innerUnit;
            int at = pos;
            pool.parallelFor(Gemm.ceilDiv(outer, 64), c -> {
                int end = Math.min(outer, (c + 1) * 64);
                for (int r = c * 64; r < end; r++) {
                    t.copyTo((long) r * block, o, r * outRow + at, block);
                }
            });
            pos += block;
        }
        return out;
    }

    @Override
    public Tensor permute(Tensor x, int... perm) {
        int rank = x.rank();
        if (perm.length != rank) {
            throw new ShapeException("permute: " + Arrays.toString(perm) + " does not list every axis of "
                    + Shapes.toString(x.shape()));
        }
        boolean[] seen = new boolean[rank];
        for (int p : perm) {
            if (p < 0 || p >= rank || seen[p]) {
                throw new ShapeException("permute: " + Arrays.toString(perm) + " is not a permutation of the axes of "
                        + Shapes.toString(x.shape()));
            }
            seen[p] = true;
        }
        int[] in = x.shape();
        int[] outShape = new int[rank];
        long[] inStride = new long[rank];
        long s = 1;
        for (int i = rank - 1; i >= 0; i--) {
            inStride[i] = s;
            s *= in[i];
        }
        long[] stride = new long[rank];
        for (int i = 0; i < rank; i++) {
            outShape[i] = in[perm[i]];
            stride[i] = inStride[perm[i]];
        }
        Tensor xin = f32(x, "permute x");
        float[] src = xin.floatArray();
        int srcOff = (int) xin.offset();
        Tensor out = Tensor.zeros(outShape);
        float[] o = out.floatArray();
        if (rank == 0 || o.length == 0) {
            if (o.length == 1) {
                o[0] = src[srcOff];
            }
            return out;
        }
        int inner = outShape[rank - 1];
        long innerStride = stride[rank - 1];
        int rows = o.length / inner;
        parallelRows(rows, inner, (r0, r1) -> {
            int[] idx = new int[rank];
            for (int r = r0; r < r1; r++) {
                long base = 0;
                int rem = r;
                for (int i = rank - 2; i >= 0; i--) {
                    idx[i] = rem % outShape[i];
                    rem /= outShape[i];
                    base += idx[i] * stride[i];
                }
                int dst = r * inner;
                for (int j = 0; j < inner; j++) {
                    o[dst + j] = src[(int) (srcOff + base + j * innerStride)];
                }
            }
        });
        return out;
    }

    @Override
    public Tensor embedding(Tensor table, int[] ids) {
        if (table.rank() != 2) {
            throw new ShapeException("embedding table must be [V, D], got " + Shapes.toString(table.shape()));
        }
        int vocab = table.dim(0);
        int d = table.dim(1);
        Tensor out = Tensor.zeros(ids.length, d);
        float[] o = out.floatArray();
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IllegalArgumentException("embedding: id " + ids[i] + " at position " + i
                        + " outside the table's " + vocab + " rows");
            }
            table.copyTo((long) ids[i] * d, o, i * d, d);
        }
        return out;
    }

    @Override
    public Tensor timestepEmbedding(float[] timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        if (dim <= 0) {
            throw new IllegalArgumentException("timestepEmbedding: dim must be positive, got " + dim);
        }
        int half = dim / 2;
        Tensor out = Tensor.zeros(timesteps.length, dim);
        float[] o = out.floatArray();
        for (int n = 0; n < timesteps.length; n++) {
            for (int i = 0; i < half; i++) {
                float freq = (float) Math.exp(-Math.log(maxPeriod) * i / (half - freqShift));
                float arg = timesteps[n] * freq;
                float c = (float) Math.cos(arg);
                float sn = (float) Math.sin(arg);
                o[n * dim + i] = cosFirst ? c : sn;
                o[n * dim + half + i] = cosFirst ? sn : c;
            }
        }
        return out;
    }

    // ---- helpers --------------------------------------------------------------------------------------------

    /** Rows of {@code width} elements split into tasks of about {@link #CHUNK} elements (a fixed split). */
    private void parallelRows(int rows, int width, RowRange body) {
        int perTask = Math.max(1, CHUNK / Math.max(1, width));
        pool.parallelFor(Gemm.ceilDiv(rows, perTask), t -> body.run(t * perTask, Math.min(rows, (t + 1) * perTask)));
    }

    @FunctionalInterface
    private interface RowRange {
        void run(int from, int to);
    }

    private static Tensor requireHost(Tensor t, String what) {
        if (!t.storage().isHost()) {
            throw new IllegalArgumentException(what + ": tensor " + Shapes.toString(t.shape())
                    + " lives on another backend; upload it to the CPU backend first");
        }
        return t;
    }

    /** The tensor itself when it is a float32 array, else a float32 copy. */
    private static Tensor f32(Tensor t, String what) {
        requireHost(t, what);
        return t.isFloatArray() ? t : t.to(DType.F32);
    }

    /** Sum in blocks of a fixed size: float vector lanes within a block, double across blocks. */
    private static double sum(float[] a, int off, int n) {
        double total = 0;
        for (int b = 0; b < n; b += 1024) {
            int end = Math.min(n, b + 1024);
            FloatVector acc = FloatVector.zero(S);
            for (int i = b; i < end; i += L) {
                acc = acc.add(FloatVector.fromArray(S, a, off + i, S.indexInRange(i, end)));
            }
            total += VecMath.sumLanes(acc);
        }
        return total;
    }

    private static double sumSquaredDeviation(float[] a, int off, int n, float mean) {
        double total = 0;
        for (int b = 0; b < n; b += 1024) {
            int end = Math.min(n, b + 1024);
            FloatVector acc = FloatVector.zero(S);
            for (int i = b; i < end; i += L) {
                VectorMask<Float> mask = S.indexInRange(i, end);
                FloatVector d = FloatVector.fromArray(S, a, off + i, mask).sub(mean).blend(0f, mask.not());
                acc = d.fma(d, acc);
            }
            total += VecMath.sumLanes(acc);
        }
        return total;
    }

    private static void affine(float[] in, int inOff, float[] out, int outOff, int n, float scale, float shift,
                               boolean silu) {
        for (int i = 0; i < n; i += L) {
            VectorMask<Float> mask = S.indexInRange(i, n);
            FloatVector v = FloatVector.fromArray(S, in, inOff + i, mask).fma(scale, shift);
            if (silu) {
                v = VecMath.silu(v);
            }
            v.intoArray(out, outOff + i, mask);
        }
    }
}
