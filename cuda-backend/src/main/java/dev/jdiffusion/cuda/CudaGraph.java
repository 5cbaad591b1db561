package dev.jdiffusion.cuda;

import dev.jdiffusion.core.tensor.Tensor;
import java.util.List;

/**
 * A step recorded once by {@link CudaBackend#capture} and replayed as one CUDA graph launch: every
 * kernel of the step with the arguments it was recorded with, reading the inputs' device memory as it
 * is at the time of the run and writing the same output tensor each time. Holds the device memory the
 * step uses until closed. Not thread-safe, like the backend.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaBackend backend;
    private final Device.Graph graph;
    private final Tensor[] inputs;
    private final Tensor output;
    private final List<Device.Block> blocks;
    private boolean closed;

    /** What cannot be recorded in a graph: a copy from or to the host, a wait for the stream. */
    public static final class CaptureException extends IllegalStateException {
        CaptureException(String message) {
            super(message);
        }
    }

    CudaGraph(CudaBackend backend, Device.Graph graph, Tensor[] inputs, Tensor output, List<Device.Block> blocks) {
        this.backend = backend;
        this.graph = graph;
        this.inputs = inputs;
        this.output = output;
        this.blocks = blocks;
    }

    /** Queues one run of the recorded step on the backend's stream. */
    public void run() {
        if (closed) {
            throw new IllegalStateException("the graph is closed");
        }
        backend.launchGraph(graph);
    }

    /**
     * The step's inputs in device memory, in the order of the capture's {@code like} list: what they
     * hold when a run executes is what it reads ({@link CudaBackend#copyInto}).
     */
    public Tensor[] inputs() {
        if (closed) {
            throw new IllegalStateException("the graph is closed");
        }
        return inputs.clone();
    }

    /** The step's output in device memory: rewritten by every {@link #run}, valid until {@link #close}. */
    public Tensor output() {
        if (closed) {
            throw new IllegalStateException("the graph is closed");
        }
        return output;
    }

    /** Device blocks the graph holds (for tests). */
    List<Device.Block> blocks() {
        return blocks;
    }

    /** Destroys the graph and gives its device memory back to the backend's pool. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            backend.destroyGraph(graph, blocks);
        }
    }
}
