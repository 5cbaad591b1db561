package dev.jdiffusion.cuda;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.ShapeException;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * The {@link Backend} on an NVIDIA GPU through the CUDA driver API (JCuda), with the project's own
 * kernels: the PTX built from {@code src/main/cuda/*.cu} travels in the jar and is loaded with
 * {@code cuModuleLoadData}, so a machine needs only the NVIDIA driver. Tensors live in device memory
 * from a {@link DevicePool} (no device allocation per op once a step has run), every op is queued on
 * one stream, and data crosses to the host only in {@link #upload} and {@link #toHost}.
 *
 * <p>Incomplete: the elementwise ops, activations, normalisations, softmax and the layout ops have
 * kernels; {@code matmul}, {@code linear}, {@code conv2d} and {@code attention} (tensor-core GEMM,
 * implicit-GEMM convolution, flash attention) do not yet and throw {@link UnsupportedOperationException},
 * so the pipeline does not offer this backend yet.
 */
public final class CudaBackend implements Backend {
    private static final int THREADS = 256;
    private static final int MAX_BLOCKS = 65535;
    private static final String[] MODULES = {"elementwise"};

    private final CUcontext context = new CUcontext();
    private final CUstream stream = new CUstream();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final DevicePool<CUdeviceptr> pool;
    private final String name;

    /** Device memory of a tensor: a pooled block, given back on {@link #release()}. */
    static final class DeviceStorage implements Storage {
        private final CUdeviceptr pointer;
        private final long bytes;
        private final DevicePool<CUdeviceptr> pool;
        private boolean released;

        DeviceStorage(CUdeviceptr pointer, long bytes, DevicePool<CUdeviceptr> pool) {
            this.pointer = pointer;
            this.bytes = bytes;
            this.pool = pool;
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
                pool.release(pointer);
            }
        }
    }

    private CudaBackend(int device) {
        CudaProbe.Result probe = CudaProbe.probe();
        if (!probe.available()) {
            throw new IllegalStateException("CUDA is not available: " + probe.reason());
        }
        JCudaDriver.setExceptionsEnabled(true);
        CUdevice dev = new CUdevice();
        JCudaDriver.cuDeviceGet(dev, device);
        JCudaDriver.cuDevicePrimaryCtxRetain(context, dev);
        JCudaDriver.cuCtxSetCurrent(context);
        JCudaDriver.cuStreamCreate(stream, 0);
        this.pool = new DevicePool<>(new DevicePool.Allocator<>() {
            @Override
            public CUdeviceptr allocate(long bytes) {
                CUdeviceptr p = new CUdeviceptr();
                JCudaDriver.cuMemAlloc(p, bytes);
                return p;
            }

            @Override
            public void free(CUdeviceptr block) {
                JCudaDriver.cuMemFree(block);
            }
        });
        for (String module : MODULES) {
            load(module);
        }
        this.name = "cuda:" + device;
    }

    /** The backend on device 0; throws with the reason when no CUDA device can be used. */
    public static CudaBackend open() {
        return new CudaBackend(0);
    }

    private void load(String module) {
        String resource = "/dev/jdiffusion/cuda/ptx/" + module + ".ptx";
        byte[] ptx;
        try (InputStream in = CudaBackend.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("the jar lacks " + resource);
            }
            ptx = in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + resource + ": " + e.getMessage(), e);
        }
        byte[] terminated = Arrays.copyOf(ptx, ptx.length + 1);
        CUmodule m = new CUmodule();
        JCudaDriver.cuModuleLoadData(m, terminated);
        for (String fn : PtxFunctions.entries(new String(ptx, java.nio.charset.StandardCharsets.US_ASCII))) {
            CUfunction f = new CUfunction();
            JCudaDriver.cuModuleGetFunction(f, m, fn);
            functions.put(fn, f);
        }
    }

    @Override
    public String name() {
        return name;
    }

    // ---- memory ------------------------------------------------------------------------------------

    private Tensor allocate(DType dtype, int... shape) {
        long bytes = Math.max(1, numel(shape)) * dtype.byteSize();
        CUdeviceptr p = pool.acquire(bytes);
        return new Tensor(new DeviceStorage(p, bytes, pool), dtype, 0, shape.clone(), true);
    }

    private static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    private static CUdeviceptr pointer(Tensor t) {
        if (!(t.storage() instanceof DeviceStorage d)) {
            throw new IllegalArgumentException("tensor " + Arrays.toString(t.shape()) + " is not in CUDA memory; upload it first");
        }
        return d.pointer.withByteOffset(t.offset() * t.dtype().byteSize());
    }

    @Override
    public Tensor upload(Tensor t) {
        if (t.storage() instanceof DeviceStorage) {
            return t;
        }
        Tensor d = allocate(t.dtype(), t.shape());
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
        JCudaDriver.cuMemcpyHtoDAsync(pointer(d), host, bytes, stream);
        JCudaDriver.cuStreamSynchronize(stream);
        return d;
    }

    @Override
    public Tensor toHost(Tensor t) {
        if (t.storage().isHost()) {
            return t;
        }
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException("only float32 tensors come back to the host, got " + t.dtype());
        }
        float[] out = new float[Math.toIntExact(t.numel())];
        JCudaDriver.cuStreamSynchronize(stream);
        JCudaDriver.cuMemcpyDtoH(Pointer.to(out), pointer(t), 4L * out.length);
        return Tensor.of(out, t.shape());
    }

    @Override
    public Tensor zeros(int... shape) {
        Tensor t = allocate(DType.F32, shape);
        JCudaDriver.cuMemsetD8Async(pointer(t), (byte) 0, 4 * numel(shape), stream);
        return t;
    }

    // ---- launching -------------------------------------------------------------------------------

    private void launch(String function, int blocks, int threads, Object... args) {
        CUfunction f = functions.get(function);
        if (f == null) {
            throw new IllegalStateException("no kernel " + function + " in the loaded PTX");
        }
        Pointer[] params = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            params[i] = switch (args[i]) {
                case null -> Pointer.to(new CUdeviceptr());
                case CUdeviceptr p -> Pointer.to(p);
                case Long v -> Pointer.to(new long[] {v});
                case Integer v -> Pointer.to(new int[] {v});
                case Float v -> Pointer.to(new float[] {v});
                case long[] struct -> Pointer.to(struct);
                default -> throw new IllegalArgumentException("kernel argument of type " + args[i].getClass());
            };
        }
        JCudaDriver.cuLaunchKernel(f, blocks, 1, 1, threads, 1, 1, 0, stream, Pointer.to(params), null);
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
        if (last % 2 != 0) {
            throw new ShapeException("GEGLU needs an even last axis, got " + Arrays.toString(x.shape()));
        }
        int[] shape = x.shape();
        shape[shape.length - 1] = last / 2;
        Tensor y = allocate(DType.F32, shape);
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
        int d = x.dim(x.rank() - 1);
        Tensor y = allocate(DType.F32, x.shape());
        int wType = gamma != null ? typeCode(gamma) : beta != null ? typeCode(beta) : 0;
        launch("layer_norm_f32", Math.toIntExact(x.numel() / d), THREADS, pointer(x), pointer(y), d,
                gamma == null ? null : pointer(gamma), beta == null ? null : pointer(beta), wType, eps);
        return y;
    }

    @Override
    public Tensor groupNorm(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, boolean silu) {
        requireF32(x);
        int c = x.dim(1);
        if (groups < 1 || c % groups != 0) {
            throw new ShapeException(c + " channels do not split into " + groups + " groups");
        }
        long spatial = x.numel() / ((long) x.dim(0) * c);
        Tensor y = allocate(DType.F32, x.shape());
        launch("group_norm_f32", x.dim(0) * groups, THREADS, pointer(x), pointer(y), c, spatial, groups, pointer(gamma),
                pointer(beta), typeCode(gamma), eps, silu ? 1 : 0);
        return y;
    }

    @Override
    public Tensor softmax(Tensor x) {
        requireF32(x);
        int d = x.dim(x.rank() - 1);
        Tensor y = allocate(DType.F32, x.shape());
        launch("softmax_f32", Math.toIntExact(x.numel() / d), THREADS, pointer(x), pointer(y), d);
        return y;
    }

    @Override
    public Tensor upsampleNearest2x(Tensor x) {
        requireF32(x);
        if (x.rank() != 4) {
            throw new ShapeException("upsampling takes [N, C, H, W], got " + Arrays.toString(x.shape()));
        }
        Tensor y = allocate(DType.F32, x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3));
        launch("upsample_nearest2x_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(x), pointer(y),
                (long) x.dim(0) * x.dim(1), x.dim(2), x.dim(3));
        return y;
    }

    @Override
    public Tensor concat(int axis, Tensor... xs) {
        int[] shape = xs[0].shape();
        int total = 0;
        for (Tensor t : xs) {
            requireF32(t);
            if (t.rank() != shape.length) {
                throw new ShapeException("concatenated tensors need the same rank: " + Arrays.toString(shape) + " and "
                        + Arrays.toString(t.shape()));
            }
            for (int d = 0; d < shape.length; d++) {
                if (d != axis && t.dim(d) != shape[d]) {
                    throw new ShapeException("shapes " + Arrays.toString(shape) + " and " + Arrays.toString(t.shape())
                            + " differ beside axis " + axis);
                }
            }
            total += t.dim(axis);
        }
        int[] out = shape.clone();
        out[axis] = total;
        Tensor y = allocate(DType.F32, out);
        long outer = 1;
        for (int d = 0; d < axis; d++) {
            outer *= shape[d];
        }
        long innerUnit = numel(out) / (outer * total);
        long offset = 0;
        for (Tensor t : xs) {
            long inner = innerUnit * t.dim(axis);
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
        Tensor idT = allocate(DType.F32, ids.length); // 4 bytes per id, read as int by the kernel
        JCudaDriver.cuMemcpyHtoDAsync(pointer(idT), Pointer.to(ids), 4L * ids.length, stream);
        Tensor y = allocate(DType.F32, ids.length, d);
        launch("embedding_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(table), typeCode(table),
                pointer(idT), pointer(y), ids.length, d);
        JCudaDriver.cuStreamSynchronize(stream);
        idT.storage().release();
        return y;
    }

    @Override
    public Tensor timestepEmbedding(float[] timesteps, int dim, float maxPeriod, boolean cosFirst, float freqShift) {
        Tensor t = upload(Tensor.of(timesteps.clone(), timesteps.length));
        Tensor y = allocate(DType.F32, timesteps.length, dim);
        launch("timestep_embedding_f32", Layouts.blocks(y.numel(), THREADS, MAX_BLOCKS), THREADS, pointer(t), pointer(y),
                timesteps.length, dim, (float) Math.log(maxPeriod), cosFirst ? 1 : 0, freqShift);
        return y;
    }

    @Override
    public Tensor matmul(Tensor a, Tensor b, boolean transA, boolean transB) {
        throw notYet("matmul");
    }

    @Override
    public Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        throw notYet("linear");
    }

    @Override
    public Tensor conv2d(Tensor x, Tensor weight, Tensor bias, int stride, int padding) {
        throw notYet("conv2d");
    }

    @Override
    public Tensor attention(Tensor q, Tensor k, Tensor v, int heads, boolean causal) {
        throw notYet("attention");
    }

    private static UnsupportedOperationException notYet(String op) {
        return new UnsupportedOperationException(op + " has no CUDA kernel yet; use the CPU backend");
    }

    @Override
    public void close() {
        JCudaDriver.cuStreamSynchronize(stream);
        pool.close();
        JCudaDriver.cuStreamDestroy(stream);
    }
}
