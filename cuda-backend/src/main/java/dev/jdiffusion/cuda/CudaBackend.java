package dev.jdiffusion.cuda;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.backend.OpShapes;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Shapes;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import jcuda.Pointer;

/**
 * The {@link Backend} on an NVIDIA GPU through the CUDA driver API (JCuda), with the project's own
 * kernels: the PTX built from {@code src/main/cuda/*.cu} travels in the jar and is loaded with
 * {@code cuModuleLoadData}, so a machine needs only the NVIDIA driver. Tensors live in device memory
 * from a {@link DevicePool} (no device allocation per op once a step has run), every op is queued on
 * one stream, and data crosses to the host only in {@link #upload} and {@link #toHost}.
 *
 * <p>Every op has a kernel. The matrix products and the convolution (an implicit GEMM) run on the
 * tensor cores when an operand (the weight) is F16 or BF16, in that precision with float32
 * accumulation, and on the CUDA cores in float32 otherwise ({@link #productKernel}); attention runs on
 * the tensor cores in F16 with a float32 softmax. A backend opened with full precision runs all of
 * them in float32 on the CUDA cores.
 */
public final class CudaBackend implements Backend {
    private static final int THREADS = 256;
    private static final int MAX_BLOCKS = 65535;

    private final Device device;
    private final DevicePool<Device.Block> pool;
    private final boolean fullPrecision;

    /** Device memory of a tensor: a pooled block, given back on {@link #release()}. */
    static final class DeviceStorage implements Storage {
        private final Device.Block block;
        private final long bytes;
        private final DevicePool<Device.Block> pool;
        private boolean released;

        DeviceStorage(Device.Block block, long bytes, DevicePool<Device.Block> pool) {
            this.block = block;
            this.bytes = bytes;
            this.pool = pool;
        }

        /** The pooled block behind the tensor. */
        Device.Block block() {
            return block;
        }

        @Override
        public long byteSize() {
            return bytes;
        }

        @Override
        public boolean isHost() {
            return false;
        }

        @Override
        public synchronized void release() {
            if (!released) {
                released = true;
                pool.release(block);
            }
        }
    }

    CudaBackend(Device device) {
        this(device, false);
    }

    CudaBackend(Device device, boolean fullPrecision) {
        this.device = device;
        this.fullPrecision = fullPrecision;
        this.pool = new DevicePool<>(new DevicePool.Allocator<>() {
            @Override
            public Device.Block allocate(long bytes) {
                return device.allocate(bytes);
            }

            @Override
            public void free(Device.Block block) {
                device.free(block);
            }
        });
    }

    /** The backend on device 0; throws with the reason when no CUDA device can be used. */
    public static CudaBackend open() {
        return open(0);
    }

    /** The backend on the device with this ordinal; throws with the reason when it cannot be used. */
    public static CudaBackend open(int ordinal) {
        return open(ordinal, false);
    }

    /**
     * The backend on the device with this ordinal; with {@code fullPrecision} every product,
     * convolution and attention runs in float32 on the CUDA cores (slower; for comparison with the
     * CPU backend), otherwise on the tensor cores as described at {@link #productKernel} and
     * {@link #attention}. Throws with the reason when the device cannot be used.
     */
    public static CudaBackend open(int ordinal, boolean fullPrecision) {
        return new CudaBackend(new JCudaDevice(ordinal), fullPrecision);
    }

    @Override
    public String name() {
        return device.name();
    }

    /** Device memory handed out now, in bytes (pooled, by size class). */
    public long bytesInUse() {
        return pool.inUse();
    }

    /** Device memory held from the driver, in use or free in the pool, in bytes. */
    public long bytesReserved() {
        return pool.reserved();
    }

    // ---- memory ------------------------------------------------------------------------------------

    private Tensor allocate(DType dtype, int... shape) {
        long bytes = Math.max(1, Shapes.numel(shape)) * dtype.byteSize();
        Device.Block block = pool.acquire(bytes);
        if (capturing != null) {
            capturing.add(block);
        }
        DeviceStorage storage = new DeviceStorage(block, bytes, pool);
        DeviceScope scope = currentScope.get();
        if (scope != null) {
            scope.owned.add(storage);
        }
        return new Tensor(storage, dtype, 0, shape.clone(), true);
    }

    /**
     * The device memory made on this thread while it is open goes back to the pool when it closes
     * (the stream orders every later use of a block after the kernels that read it before), except
     * what {@link Scope#keep} hands to the enclosing scope.
     */
    @Override
    public Scope scope() {
        DeviceScope s = new DeviceScope(currentScope.get());
        currentScope.set(s);
        return s;
    }

    private final ThreadLocal<DeviceScope> currentScope = new ThreadLocal<>();

    private final class DeviceScope implements Scope {
        private final DeviceScope parent;
        private final java.util.Set<DeviceStorage> owned = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        private boolean closed;

        DeviceScope(DeviceScope parent) {
            this.parent = parent;
        }

        @Override
        public Tensor keep(Tensor t) {
            if (closed) {
                throw new IllegalStateException("keep() on a closed scope");
            }
            if (t != null && t.storage() instanceof DeviceStorage d && owned.remove(d) && parent != null) {
                parent.owned.add(d);
            }
            return t;
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            if (currentScope.get() != this) {
                throw new IllegalStateException("scopes must close in the reverse order of opening, on the thread that opened them");
            }
            closed = true;
            for (DeviceStorage d : owned) {
                d.release();
            }
            owned.clear();
            if (parent == null) {
                currentScope.remove();
            } else {
                currentScope.set(parent);
            }
        }
    }

    private static Device.Address pointer(Tensor t) {
        if (!(t.storage() instanceof DeviceStorage d)) {
            throw new IllegalArgumentException("tensor " + Arrays.toString(t.shape()) + " is not in CUDA memory; upload it first");
        }
        return new Device.Address(d.block, t.offset() * t.dtype().byteSize());
    }

    /** In autocast a float32 weight goes up as F16 (saturating at ±65504); in full precision as stored. */
    @Override
    public Tensor uploadWeight(Tensor t) {
        if (fullPrecision || t.dtype() != DType.F32) {
            return upload(t);
        }
        float[] v = (t.storage() instanceof DeviceStorage ? toHost(t) : t).toFloatArray();
        for (int i = 0; i < v.length; i++) {
            v[i] = Math.max(-65504f, Math.min(65504f, v[i]));
        }
        return upload(Tensor.ofHalf(v, DType.F16, t.shape()));
    }

    @Override
    public Tensor upload(Tensor t) {
        if (t.storage() instanceof DeviceStorage) {
            return t;
        }
        notCapturing("uploading host data (" + Arrays.toString(t.shape()) + ")");
        Tensor d = allocate(t.dtype(), t.shape());
        device.copyToDevice(pointer(d), hostPointer(t), t.numel() * t.dtype().byteSize());
        device.synchronize();
        return d;
    }

    /** The host memory of a tensor for a copy to the device (a half-precision segment: a copy of its bytes). */
    private static Pointer hostPointer(Tensor t) {
        long bytes = t.numel() * t.dtype().byteSize();
        Pointer host;
        if (t.isFloatArray()) {
            host = Pointer.to(t.floatArray()).withByteOffset(4 * t.offset());
        } else if (t.storage() instanceof Storage.Segment(MemorySegment seg)) {
            byte[] copy = seg.asSlice(t.offset() * t.dtype().byteSize(), bytes).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            host = Pointer.to(copy);
        } else {
            throw new IllegalArgumentException("cannot upload a tensor stored in " + t.storage().getClass().getSimpleName());
        }
        return host;
    }

    /**
     * Overwrites the device tensor {@code dst} with {@code src} (host memory or this backend's) of the
     * same shape and type, in stream order: how new inputs reach a captured graph ({@link #capture}).
     */
    public void copyInto(Tensor src, Tensor dst) {
        if (!Arrays.equals(src.shape(), dst.shape()) || src.dtype() != dst.dtype()) {
            throw new ShapeException("copyInto: " + src.dtype() + " " + Arrays.toString(src.shape()) + " into " + dst.dtype() + " "
                    + Arrays.toString(dst.shape()));
        }
        long bytes = src.numel() * src.dtype().byteSize();
        if (src.storage() instanceof DeviceStorage) {
            device.copy(pointer(dst), pointer(src), bytes);
        } else {
            notCapturing("copying host data into " + Arrays.toString(dst.shape()));
            device.copyToDevice(pointer(dst), hostPointer(src), bytes);
            device.synchronize();
        }
    }

    // ---- graphs --------------------------------------------------------------------------------------

    /** The blocks handed out while a capture runs; null when none does. */
    private java.util.Set<Device.Block> capturing;

    private void notCapturing(String what) {
        if (capturing != null) {
            throw new CudaGraph.CaptureException(what + " cannot be part of a CUDA graph: a captured step reads its inputs from"
                    + " device memory and its output is read after it runs");
        }
    }

    /**
     * Records the device work of {@code body} as a CUDA graph instead of running it, so that
     * {@link CudaGraph#run} replays all of it with one launch and no per-kernel host overhead. The
     * body gets device tensors shaped and typed like {@code like} (the graph's {@linkplain
     * CudaGraph#inputs inputs}, refreshed before each run with {@link #copyInto}), may read other
     * device tensors that outlive the graph (the weights), and returns its output. It must not copy
     * from or to the host: a {@link CudaGraph.CaptureException} says what did, and nothing stays
     * recorded. Every block of device memory the step uses, inputs and output included, is the graph's
     * until it is closed, so nothing else can take memory that a run writes. One capture at a time, on
     * the thread that uses this backend.
     */
    public CudaGraph capture(java.util.List<Tensor> like, java.util.function.Function<Tensor[], Tensor> body) {
        if (capturing != null) {
            throw new IllegalStateException("a capture is already running");
        }
        java.util.Set<Device.Block> used = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        Tensor[] inputs = new Tensor[like.size()];
        Tensor out;
        Device.Graph graph;
        boolean begun = false;
        try {
            try (Scope s = scope()) {
                capturing = used;
                for (int i = 0; i < inputs.length; i++) {
                    inputs[i] = allocate(like.get(i).dtype(), like.get(i).shape());
                }
                device.beginCapture();
                begun = true;
                out = body.apply(inputs.clone());
                if (out == null || !(out.storage() instanceof DeviceStorage)) {
                    throw new IllegalArgumentException("a captured step must return a tensor in device memory");
                }
            }
            capturing = null;
            graph = device.endCapture();
        } catch (RuntimeException | Error e) {
            if (capturing != null) {
                capturing = null;
                if (begun) {
                    device.abortCapture();
                }
            }
            throw e;
        }
        // the scope gave every block back to the pool: the graph takes them for its lifetime
        for (Device.Block b : used) {
            pool.claim(b);
        }
        return new CudaGraph(this, graph, inputs, out, java.util.List.copyOf(used));
    }

    void launchGraph(Device.Graph graph) {
        notCapturing("launching a graph");
        device.launchGraph(graph);
    }

    void destroyGraph(Device.Graph graph, java.util.List<Device.Block> blocks) {
        device.destroyGraph(graph);
        for (Device.Block b : blocks) {
            pool.release(b);
        }
    }

    @Override
    public Tensor toHost(Tensor t) {
        if (t.storage().isHost()) {
            return t;
        }
        notCapturing("copying " + Arrays.toString(t.shape()) + " to the host");
        if (t.dtype().isHalf()) {
            short[] bits = new short[Math.toIntExact(t.numel())];
            device.copyToHost(Pointer.to(bits), pointer(t), 2L * bits.length);
            return Tensor.wrap(java.lang.foreign.MemorySegment.ofArray(bits), t.dtype(), t.shape());
        }
        float[] out = new float[Math.toIntExact(t.numel())];
        device.copyToHost(Pointer.to(out), pointer(t), 4L * out.length);
        return Tensor.of(out, t.shape());
    }

    @Override
    public Tensor zeros(int... shape) {
        Tensor t = allocate(DType.F32, shape);
        device.zero(pointer(t), 4 * Shapes.numel(shape));
        return t;
    }

    // ---- launching -------------------------------------------------------------------------------

    private void launch(String function, int blocks, int threads, Object... args) {
        launchGrid(function, blocks, 1, 1, threads, 0, args);
    }

    private void launchGrid(String function, int gx, int gy, int gz, int threads, int sharedBytes, Object... args) {
        Object[] converted = args.clone();
        for (int i = 0; i < converted.length; i++) {
            if (converted[i] == null) {
                converted[i] = Device.Address.NULL;
            }
        }
        device.launch(function, gx, gy, gz, threads, sharedBytes, converted);
    }

    private static int typeCode(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> 0;
            case F16 -> 1;
            case BF16 -> 2;
        };
    }

    private Tensor unary(String kernel, Tensor x) {
        requireF32(x);
        Tensor y = allocate(DType.F32, x.shape());
        launch(kernel, Layouts.blocks(x.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(x), pointer(y), x.numel());
        return y;
    }

    private static void requireF32(Tensor x) {
        if (x.dtype() != DType.F32) {
            throw new IllegalArgumentException("activations are float32, got " + x.dtype() + " " + Arrays.toString(x.shape()));
        }
    }

    // ---- ops ---------------------------------------------------------------------------------------

    @Override
    public Tensor silu(Tensor x) {
        return unary("silu_f32", x);
    }

    @Override
    public Tensor gelu(Tensor x) {
        return unary("gelu_f32", x);
    }

    @Override
    public Tensor geluTanh(Tensor x) {
        return unary("gelu_tanh_f32", x);
    }

    @Override
    public Tensor quickGelu(Tensor x) {
        return unary("quick_gelu_f32", x);
    }

    @Override
    public Tensor geglu(Tensor x) {
        requireF32(x);
        int last = x.dim(x.rank() - 1);
        Tensor y = allocate(DType.F32, OpShapes.geglu(x));
        long rows = x.numel() / last;
        launch("geglu_f32", Layouts.blocks(rows * (last / 2), THREADS, MAX_BLOCKS), THREADS, pointer(x), pointer(y), rows,
                last / 2);
        return y;
    }

    @Override
    public Tensor scale(Tensor a, float s) {
        requireF32(a);
        Tensor y = allocate(DType.F32, a.shape());
        launch("scale_f32", Layouts.blocks(a.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(a), pointer(y), s, a.numel());
        return y;
    }

    private Tensor binary(Tensor a, Tensor b, int op) {
        requireF32(a);
        long[] st = Layouts.binary(a.shape(), b.shape());
        int[] out = Layouts.broadcast(a.shape(), b.shape());
        Tensor y = allocate(DType.F32, out);
        launch("binary_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(a), pointer(b), typeCode(b),
                pointer(y), y.numel(), st, op);
        return y;
    }

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return binary(a, b, 0);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return binary(a, b, 1);
    }

    @Override
    public Tensor layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps) {
        requireF32(x);
        OpShapes.layerNorm(x, gamma, beta);
        int d = x.dim(x.rank() - 1);
        Tensor y = allocate(DType.F32, x.shape());
        launch("layer_norm_f32", Math.toIntExact(x.numel() / d), THREADS, pointer(x), pointer(y), d,
                gamma == null ? null : pointer(gamma), gamma == null ? 0 : typeCode(gamma),
                beta == null ? null : pointer(beta), beta == null ? 0 : typeCode(beta), eps);
        return y;
    }

    @Override
    public Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, boolean silu) {
        requireF32(x);
        OpShapes.groupNorm(x, groups, gamma, beta);
        int c = x.dim(1);
        long spatial = x.numel() / ((long) x.dim(0) * c);
        Tensor y = allocate(DType.F32, x.shape());
        launch("group_norm_f32", x.dim(0) * groups, THREADS, pointer(x), pointer(y), c, spatial, groups, pointer(gamma),
                typeCode(gamma), pointer(beta), typeCode(beta), eps, silu ? 1 : 0);
        return y;
    }

    @Override
    public Tensor softmax(Tensor x) {
        requireF32(x);
        OpShapes.softmax(x);
        int d = x.dim(x.rank() - 1);
        Tensor y = allocate(DType.F32, x.shape());
        launch("softmax_f32", Math.toIntExact(x.numel() / d), THREADS, pointer(x), pointer(y), d);
        return y;
    }

    @Override
    public Tensor upsampleNearest2x(Tensor x) {
        requireF32(x);
        Tensor y = allocate(DType.F32, OpShapes.upsampleNearest2x(x));
        launch("upsample_nearest2x_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(x), pointer(y),
                (long) x.dim(0) * x.dim(1), x.dim(2), x.dim(3));
        return y;
    }

    @Override
    public Tensor concat(int axis, Tensor... xs) {
        int[] out = OpShapes.concat(axis, xs);
        for (Tensor t : xs) {
            requireF32(t);
        }
        int ax = Shapes.axis(axis, out.length);
        int total = out[ax];
        Tensor y = allocate(DType.F32, out);
        long outer = 1;
        for (int d = 0; d < ax; d++) {
            outer *= out[d];
        }
        long innerUnit = Shapes.numel(out) / (outer * total);
        long offset = 0;
        for (Tensor t : xs) {
            long inner = innerUnit * t.dim(ax);
            launch("concat_part_f32", Layouts.blocks(outer * inner, THREADS, MAX_BLOCKS), THREADS, pointer(t), pointer(y),
                    outer, inner, innerUnit * total, offset);
            offset += inner;
        }
        return y;
    }

    @Override
    public Tensor permute(Tensor x, int... perm) {
        requireF32(x);
        long[] p = Layouts.permute(x.shape(), perm);
        int[] out = new int[perm.length];
        for (int i = 0; i < perm.length; i++) {
            out[i] = x.dim(perm[i]);
        }
        Tensor y = allocate(DType.F32, out);
        launch("permute_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(x), pointer(y), y.numel(), p);
        return y;
    }

    @Override
    public Tensor embedding(Tensor table, int[] ids) {
        int d = table.dim(1);
        for (int id : ids) {
            if (id < 0 || id >= table.dim(0)) {
                throw new IllegalArgumentException("id " + id + " is outside the table of " + table.dim(0) + " rows");
            }
        }
        notCapturing("uploading token ids");
        Tensor idT = allocate(DType.F32, ids.length); // 4 bytes per id, read as int by the kernel
        device.copyToDevice(pointer(idT), Pointer.to(ids), 4L * ids.length);
        Tensor y = allocate(DType.F32, ids.length, d);
        launch("embedding_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(table), typeCode(table),
                pointer(idT), pointer(y), ids.length, d);
        device.synchronize();
        idT.storage().release();
        return y;
    }

    @Override
    public Tensor timestepEmbedding(float[] timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        return timestepEmbedding(Tensor.of(timesteps.clone(), timesteps.length), dim, maxPeriod, cosFirst, freqShift);
    }

    @Override
    public Tensor timestepEmbedding(Tensor timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        if (timesteps.rank() != 1 || timesteps.dtype() != DType.F32) {
            throw new ShapeException("timestepEmbedding takes float32 timesteps [B], got " + timesteps.dtype() + " "
                    + Arrays.toString(timesteps.shape()));
        }
        if (dim <= 0) {
            throw new IllegalArgumentException("timestepEmbedding: dim must be positive, got " + dim);
        }
        int b = timesteps.dim(0);
        Tensor t = upload(timesteps);
        Tensor y = allocate(DType.F32, b, dim);
        launch("timestep_embedding_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(t), pointer(y),
                b, dim, maxPeriod, cosFirst ? 1 : 0, freqShift);
        return y;
    }

    private static final int TILE = 64;
    private static final int TENSOR_CORE_TILE = 128;
    private static final int GEMM_THREADS = 256;
    private static final int ATTENTION_QUERIES = 64;
    private static final int ATTENTION_KEYS = 32;
    private static final int ATTENTION_MAX_HEAD_DIM = 160;
    private static final int TENSOR_CORE_QUERIES = 64;
    private static final int TENSOR_CORE_ATTENTION_THREADS = 128;

    /**
     * The kernel for a product of operands stored as these types: on the tensor cores (WMMA, float32
     * accumulation) in BF16 when either operand is BF16, else in F16 when either is F16, the other
     * operand converted as it is loaded (F16 saturating at ±65504); on the CUDA cores in float32 when
     * both are float32. So a model computes in the precision of its weights.
     */
    static String productKernel(String base, DType a, DType b) {
        if (a == DType.BF16 || b == DType.BF16) {
            return base + "_tc_bf16";
        }
        if (a == DType.F16 || b == DType.F16) {
            return base + "_tc_f16";
        }
        return base + "_f32";
    }

    private String product(String base, Tensor a, Tensor b) {
        return fullPrecision ? base + "_f32" : productKernel(base, a.dtype(), b.dtype());
    }

    private static int productTile(String kernel) {
        return kernel.contains("_tc_") ? TENSOR_CORE_TILE : TILE;
    }

    @Override
    public Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        OpShapes.Matmul mm = OpShapes.matmul(a, b, transA, transB);
        int m = mm.m();
        int n = mm.n();
        int ka = mm.k();
        Tensor c = allocate(DType.F32, mm.outShape());
        String kernel = product("gemm", a, b);
        int tile = productTile(kernel);
        launchGrid(kernel, ceil(n, tile), ceil(m, tile), mm.batch(), GEMM_THREADS, 0,
                pointer(a), typeCode(a), mm.batchedA() ? (long) m * ka : 0L, a.dim(-1), transA ? 1 : 0,
                pointer(b), typeCode(b), mm.batchedB() ? (long) ka * n : 0L, b.dim(-1), transB ? 1 : 0,
                pointer(c), (long) m * n, m, n, ka, null, 0, null);
        return c;
    }

    @Override
    public Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        return linear(x, weight, bias, null);
    }

    /** The residual added in the product's epilogue, after the bias. */
    @Override
    public Tensor linear(Tensor x, Tensor weight, Tensor bias, Tensor residual) {
        requireF32(x);
        int[] out = OpShapes.linear(x, weight, bias);
        Device.Address r = residualPointer("linear", out, residual);
        int k = weight.dim(1);
        int n = weight.dim(0);
        int m = Math.toIntExact(x.numel() / Math.max(1, k));
        Tensor y = allocate(DType.F32, out);
        String kernel = product("gemm", x, weight);
        int tile = productTile(kernel);
        launchGrid(kernel, ceil(n, tile), ceil(m, tile), 1, GEMM_THREADS, 0,
                pointer(x), 0, 0L, k, 0, pointer(weight), typeCode(weight), 0L, k, 1,
                pointer(y), 0L, m, n, k, bias == null ? null : pointer(bias), bias == null ? 0 : typeCode(bias),
                r);
        return y;
    }

    @Override
    public Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding) {
        return conv2d(x, weight, bias, stride, padding, null);
    }

    /** The residual added in the convolution's epilogue, after the bias. */
    @Override
    public Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding, Tensor residual) {
        requireF32(x);
        int[] out = OpShapes.conv2d(x, weight, bias, stride, padding);
        Device.Address r = residualPointer("conv2d", out, residual);
        int h = x.dim(2);
        int w = x.dim(3);
        int kh = weight.dim(2);
        int kw = weight.dim(3);
        int oh = out[2];
        int ow = out[3];
        int cout = weight.dim(0);
        Tensor y = allocate(DType.F32, out);
        String kernel = product("conv2d", x, weight);
        int tile = productTile(kernel);
        launchGrid(kernel, ceil(oh * ow, tile), ceil(cout, tile), x.dim(0), GEMM_THREADS, 0,
                pointer(x), pointer(weight), typeCode(weight), bias == null ? null : pointer(bias),
                bias == null ? 0 : typeCode(bias), pointer(y), x.dim(1), h, w, cout, kh, kw, stride, padding, oh, ow,
                r);
        return y;
    }

    /**
     * Attention with an online softmax, the score matrix never stored: on the tensor cores (Q·Kᵀ and
     * P·V with F16 operands and float32 accumulation, the softmax in float32; 64 queries per block, 32
     * keys per step), or with full precision in float32 on the CUDA cores (one thread per query).
     * Head dims up to 160.
     */
    @Override
    public Tensor attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal) {
        requireF32(q);
        requireF32(k);
        requireF32(v);
        OpShapes.attention(q, k, v, heads, causal);
        int d = q.dim(2) / heads;
        if (d > ATTENTION_MAX_HEAD_DIM) {
            throw new ShapeException("the CUDA attention kernel takes head dims up to " + ATTENTION_MAX_HEAD_DIM + ", got " + d);
        }
        Tensor out = allocate(DType.F32, q.shape());
        if (fullPrecision) {
            launchGrid("attention_f32", ceil(q.dim(1), ATTENTION_QUERIES), heads, q.dim(0), ATTENTION_QUERIES,
                    2 * ATTENTION_KEYS * d * 4, pointer(q), pointer(k), pointer(v), pointer(out), q.dim(1), k.dim(1),
                    heads, d, (float) (1 / Math.sqrt(d)), causal ? 1 : 0);
        } else {
            launchGrid("attention_tc_f16", ceil(q.dim(1), TENSOR_CORE_QUERIES), heads, q.dim(0), TENSOR_CORE_ATTENTION_THREADS,
                    0, pointer(q), pointer(k), pointer(v), pointer(out), q.dim(1), k.dim(1), heads, d,
                    (float) (1 / Math.sqrt(d)), causal ? 1 : 0);
        }
        return out;
    }

    /** A residual's device pointer (null for none), checked: float32 on this device, of the output's shape. */
    private static Device.Address residualPointer(String op, int[] out, Tensor residual) {
        if (residual == null) {
            return null;
        }
        OpShapes.residual(op, out, residual);
        requireF32(residual);
        return pointer(residual);
    }

    private static int ceil(long n, int tile) {
        return Math.toIntExact(Math.max(1, (n + tile - 1) / tile));
    }

    private static final int PEAK_THREADS = 128;
    private static final int PEAK_CHAINS = 8;

    /**
     * Queues a run of the tensor cores at their peak, for benchmarks: {@code blocks} blocks of 4 warps,
     * each warp chaining 8 independent 16×16×16 WMMA products of fragments held in registers
     * {@code iterations} times, in F16 or BF16 with float32 accumulation, with no memory traffic.
     * Returns the FLOPs queued; time them up to {@link #synchronize()}.
     */
    public double tensorCorePeak(DType type, int blocks, int iterations) {
        String kernel = switch (type) {
            case F16 -> "mma_peak_f16";
            case BF16 -> "mma_peak_bf16";
            default -> throw new IllegalArgumentException("the tensor cores' peak is measured in F16 or BF16, not " + type);
        };
        if (blocks < 1 || blocks > MAX_BLOCKS || iterations < 1) {
            throw new IllegalArgumentException("tensorCorePeak needs 1.." + MAX_BLOCKS + " blocks and a positive iteration count, got "
                    + blocks + ", " + iterations);
        }
        int warps = blocks * (PEAK_THREADS / 32);
        Tensor sums = allocate(DType.F32, warps);
        launch(kernel, blocks, PEAK_THREADS, pointer(sums), 1e-3f, iterations);
        sums.storage().release(); // later users of the block come after the kernel on the stream
        return 2.0 * 16 * 16 * 16 * PEAK_CHAINS * iterations * warps;
    }

    /** Waits until everything queued on the stream so far has run. */
    public void synchronize() {
        notCapturing("waiting for the stream");
        device.synchronize();
    }

    /** The pool's device allocations so far (a denoising loop makes its allocations in its first step). */
    long deviceAllocations() {
        return pool.allocations();
    }

    @Override
    public void close() {
        device.synchronize();
        pool.close();
        device.close();
    }
}
