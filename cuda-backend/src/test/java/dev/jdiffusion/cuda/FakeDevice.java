package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import jcuda.Pointer;

/**
 * A fake GPU that checks every request against what a real one would accept: each launch's
 * arguments against the kernel's parameter list in the shipped PTX (count, width, kind), launch
 * limits (1024 threads, 48 KiB of shared memory, grid sizes), and that every pointer lies inside a
 * live allocation. It computes nothing (copies to the host leave the host memory as it was); it
 * counts allocations, copies, launches and waits, so tests can check how the backend and the models
 * use a GPU without one. Stream capture records the device-side work (launches, zeroing, device
 * copies) instead of doing it and fails on anything a real capture refuses (host copies, waits);
 * a graph launch replays the record, checking every pointer again. Also used by other modules'
 * tests (this module's test jar).
 */
public final class FakeDevice implements Device {
    final Map<String, List<PtxFunctions.Param>> signatures = new HashMap<>();
    final Set<Long> live = new HashSet<>();
    final Set<String> launched = new LinkedHashSet<>();
    /** Every launch as "kernel XxYxZ" (its grid), in order. */
    final List<String> grids = new ArrayList<>();
    long next;
    int allocations;
    int launches;
    int toDevice;
    int toHost;
    int synchronizations;
    int deviceCopies;
    int graphLaunches;
    /** What the current stream capture recorded; null when not capturing. */
    List<Runnable> recording;
    final Map<Long, List<Runnable>> graphs = new HashMap<>();

    public FakeDevice() {
        for (String m : JCudaDevice.MODULES) {
            signatures.putAll(PtxFunctions.signatures(JCudaDevice.ptx(m)));
        }
    }

    @Override
    public Block allocate(long bytes) {
        allocations++;
        Block b = new Block(++next, bytes, null);
        live.add(b.id());
        return b;
    }

    @Override
    public void free(Block block) {
        assertTrue(live.remove(block.id()), "freeing a block that is not live");
    }

    private void inside(Address a, long bytes) {
        if (a.block() == null) {
            return;
        }
        assertTrue(live.contains(a.block().id()), "pointer into a freed block");
        assertTrue(a.offset() >= 0 && a.offset() + bytes <= a.block().bytes(), "range outside its block");
    }

    private void notCapturing(String what) {
        assertTrue(recording == null, what + " while the stream is being captured");
    }

    /** Runs a piece of stream work now, or records it while capturing (also the {@link EmulatedDevice}'s computing). */
    void stream(Runnable work) {
        if (recording != null) {
            recording.add(work);
        } else {
            work.run();
        }
    }

    @Override
    public void copyToDevice(Address dst, Pointer src, long bytes) {
        notCapturing("a copy from the host");
        toDevice++;
        inside(dst, bytes);
    }

    @Override
    public void copyToHost(Pointer dst, Address src, long bytes) {
        notCapturing("a copy to the host");
        toHost++;
        inside(src, bytes);
    }

    @Override
    public void zero(Address dst, long bytes) {
        stream(() -> inside(dst, bytes));
    }

    @Override
    public void copy(Address dst, Address src, long bytes) {
        stream(() -> {
            inside(dst, bytes);
            inside(src, bytes);
            deviceCopies++;
        });
    }

    @Override
    public void beginCapture() {
        notCapturing("a second capture");
        recording = new ArrayList<>();
    }

    @Override
    public Graph endCapture() {
        assertTrue(recording != null, "endCapture without a capture");
        Graph g = new Graph(++next, null);
        graphs.put(g.id(), recording);
        recording = null;
        return g;
    }

    @Override
    public void abortCapture() {
        recording = null;
    }

    @Override
    public void launchGraph(Graph graph) {
        notCapturing("a graph launch");
        List<Runnable> work = graphs.get(graph.id());
        assertTrue(work != null, "launching a destroyed graph");
        graphLaunches++;
        work.forEach(Runnable::run);
    }

    @Override
    public void destroyGraph(Graph graph) {
        assertTrue(graphs.remove(graph.id()) != null, "destroying a graph twice");
    }

    @Override
    public void launch(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object... args) {
        List<PtxFunctions.Param> params = signatures.get(kernel);
        assertTrue(params != null, "no kernel " + kernel + " in the PTX");
        PtxFunctions.check(kernel, params, args);
        assertTrue(threads >= 1 && threads <= 1024, kernel + ": " + threads + " threads");
        assertTrue(sharedBytes >= 0 && sharedBytes <= 48 * 1024, kernel + ": " + sharedBytes + " bytes of shared memory");
        assertTrue(gridX >= 1 && gridY >= 1 && gridY <= 65535 && gridZ >= 1 && gridZ <= 65535,
                kernel + ": grid " + gridX + "x" + gridY + "x" + gridZ);
        stream(() -> {
            for (Object a : args) {
                if (a instanceof Address ad) {
                    inside(ad, 0);
                }
            }
            launched.add(kernel);
            grids.add(kernel + " " + gridX + "x" + gridY + "x" + gridZ);
            launches++;
        });
    }

    @Override
    public void synchronize() {
        notCapturing("a wait for the stream");
        synchronizations++;
    }

    @Override
    public String name() {
        return "fake";
    }

    /** The device memory the backend's pool takes for a tensor of this many bytes (its block's size). */
    public static long poolBlockBytes(long bytes) {
        return DevicePool.sizeClass(bytes);
    }

    /** A CUDA backend on this device. */
    public CudaBackend backend() {
        return new CudaBackend(this);
    }

    /** Device allocations so far (the pool's requests to the driver). */
    public int allocations() {
        return allocations;
    }

    /** Host-to-device copies so far. */
    public int copiesToDevice() {
        return toDevice;
    }

    /** Device-to-host copies so far. */
    public int copiesToHost() {
        return toHost;
    }

    /** Kernel launches so far. */
    public int launches() {
        return launches;
    }

    /** Graph launches so far. */
    public int graphLaunches() {
        return graphLaunches;
    }

    /** Device-to-device copies run so far. */
    public int deviceCopies() {
        return deviceCopies;
    }

    /** Waits for the stream so far. */
    public int synchronizations() {
        return synchronizations;
    }

    /** Blocks allocated and not freed. */
    public int liveBlocks() {
        return live.size();
    }

    @Override
    public void close() {
    }
}
