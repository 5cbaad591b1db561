package dev.jdiffusion.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * A GPU through the CUDA driver API (JCuda): the device's primary context, one stream, the PTX
 * modules of the jar loaded with {@code cuModuleLoadData}, every launch's arguments checked against
 * the kernel's PTX parameter list first.
 */
final class JCudaDevice implements Device {
    static final List<String> MODULES = List.of("elementwise", "linalg");

    private final CUcontext context = new CUcontext();
    private final CUstream stream = new CUstream();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final Map<String, List<PtxFunctions.Param>> signatures = new HashMap<>();
    private final AtomicLong ids = new AtomicLong();
    private final String name;

    JCudaDevice(int ordinal) {
        CudaProbe.Result probe = CudaProbe.probe();
        if (!probe.available()) {
            throw new IllegalStateException("CUDA is not available: " + probe.reason());
        }
        if (ordinal < 0 || ordinal >= probe.devices()) {
            throw new IllegalArgumentException("there is no CUDA device " + ordinal + " (this machine has " + probe.devices()
                    + ": 0.." + (probe.devices() - 1) + ")");
        }
        JCudaDriver.setExceptionsEnabled(true);
        CUdevice dev = new CUdevice();
        JCudaDriver.cuDeviceGet(dev, ordinal);
        JCudaDriver.cuDevicePrimaryCtxRetain(context, dev);
        JCudaDriver.cuCtxSetCurrent(context);
        JCudaDriver.cuStreamCreate(stream, 0);
        for (String module : MODULES) {
            String ptx = ptx(module);
            CUmodule m = new CUmodule();
            byte[] bytes = ptx.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            JCudaDriver.cuModuleLoadData(m, Arrays.copyOf(bytes, bytes.length + 1));
            PtxFunctions.signatures(ptx).forEach((fn, params) -> {
                CUfunction f = new CUfunction();
                JCudaDriver.cuModuleGetFunction(f, m, fn);
                functions.put(fn, f);
                signatures.put(fn, params);
            });
        }
        this.name = "cuda:" + ordinal + " (" + probe.deviceName() + ")";
    }

    /** The PTX text of a module from the jar. */
    static String ptx(String module) {
        String resource = "/dev/jdiffusion/cuda/ptx/" + module + ".ptx";
        try (InputStream in = JCudaDevice.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("the jar lacks " + resource);
            }
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + resource + ": " + e.getMessage(), e);
        }
    }

    private static CUdeviceptr pointer(Address a) {
        if (a.block() == null) {
            return new CUdeviceptr();
        }
        return ((CUdeviceptr) a.block().handle()).withByteOffset(a.offset());
    }

    @Override
    public Block allocate(long bytes) {
        CUdeviceptr p = new CUdeviceptr();
        JCudaDriver.cuMemAlloc(p, bytes);
        return new Block(ids.incrementAndGet(), bytes, p);
    }

    @Override
    public void free(Block block) {
        JCudaDriver.cuMemFree((CUdeviceptr) block.handle());
    }

    @Override
    public void copyToDevice(Address dst, Pointer src, long bytes) {
        JCudaDriver.cuMemcpyHtoDAsync(pointer(dst), src, bytes, stream);
    }

    @Override
    public void copyToHost(Pointer dst, Address src, long bytes) {
        JCudaDriver.cuStreamSynchronize(stream);
        JCudaDriver.cuMemcpyDtoH(dst, pointer(src), bytes);
    }

    @Override
    public void zero(Address dst, long bytes) {
        JCudaDriver.cuMemsetD8Async(pointer(dst), (byte) 0, bytes, stream);
    }

    @Override
    public void copy(Address dst, Address src, long bytes) {
        JCudaDriver.cuMemcpyDtoDAsync(pointer(dst), pointer(src), bytes, stream);
    }

    /** A captured graph and its launchable instance. */
    private record Captured(CUgraph graph, CUgraphExec exec) {
    }

    @Override
    public void beginCapture() {
        // relaxed: the pool may still call cuMemAlloc while a step is recorded (its first capture)
        JCudaDriver.cuStreamBeginCapture(stream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
    }

    @Override
    public Graph endCapture() {
        CUgraph graph = new CUgraph();
        JCudaDriver.cuStreamEndCapture(stream, graph);
        CUgraphExec exec = new CUgraphExec();
        try {
            JCudaDriver.cuGraphInstantiate(exec, graph, 0);
        } catch (RuntimeException e) {
            JCudaDriver.cuGraphDestroy(graph);
            throw e;
        }
        return new Graph(ids.incrementAndGet(), new Captured(graph, exec));
    }

    @Override
    public void abortCapture() {
        CUgraph graph = new CUgraph();
        try {
            JCudaDriver.cuStreamEndCapture(stream, graph);
            JCudaDriver.cuGraphDestroy(graph);
        } catch (RuntimeException e) {
            // an invalidated capture ends with an error and no graph: nothing to destroy
        }
    }

    @Override
    public void launchGraph(Graph graph) {
        JCudaDriver.cuGraphLaunch(((Captured) graph.handle()).exec(), stream);
    }

    @Override
    public void destroyGraph(Graph graph) {
        Captured c = (Captured) graph.handle();
        JCudaDriver.cuGraphExecDestroy(c.exec());
        JCudaDriver.cuGraphDestroy(c.graph());
    }

    @Override
    public void launch(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object... args) {
        CUfunction f = functions.get(kernel);
        if (f == null) {
            throw new IllegalStateException("no kernel " + kernel + " in the loaded PTX");
        }
        PtxFunctions.check(kernel, signatures.get(kernel), args);
        Pointer[] params = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            params[i] = switch (args[i]) {
                case Address a -> Pointer.to(pointer(a));
                case Long v -> Pointer.to(new long[] {v});
                case Integer v -> Pointer.to(new int[] {v});
                case Float v -> Pointer.to(new float[] {v});
                case long[] struct -> Pointer.to(struct);
                default -> throw new IllegalArgumentException("kernel argument of type " + args[i].getClass());
            };
        }
        JCudaDriver.cuLaunchKernel(f, gridX, gridY, gridZ, threads, 1, 1, sharedBytes, stream, Pointer.to(params), null);
    }

    @Override
    public void synchronize() {
        JCudaDriver.cuStreamSynchronize(stream);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void close() {
        JCudaDriver.cuStreamSynchronize(stream);
        JCudaDriver.cuStreamDestroy(stream);
    }
}
