package dev.jdiffusion.cuda;

import jcuda.Pointer;

/**
 * What the backend needs of a GPU: memory blocks, copies, launches, all on one stream. The real one
 * is {@link JCudaDevice}; tests put a fake one in its place to check what the backend asks for
 * without a GPU.
 */
interface Device extends AutoCloseable {
    /** A device allocation; {@code id} is unique per device. */
    record Block(long id, long bytes, Object handle) {
    }

    /** A kernel argument that points into device memory ({@code block} null: a null pointer). */
    record Address(Block block, long offset) {
        static final Address NULL = new Address(null, 0);
    }

    Block allocate(long bytes);

    void free(Block block);

    /** Host to device, queued on the stream; the host memory must stay untouched until {@link #synchronize()}. */
    void copyToDevice(Address dst, Pointer src, long bytes);

    /** Device to host, after everything queued before it. */
    void copyToHost(Pointer dst, Address src, long bytes);

    void zero(Address dst, long bytes);

    /** Device to device, queued on the stream. */
    void copy(Address dst, Address src, long bytes);

    /** A recorded stream of work ({@link #beginCapture}), replayed by {@link #launchGraph}. */
    record Graph(long id, Object handle) {
    }

    /**
     * From now until {@link #endCapture}, copies between device memory, zeroing and launches are
     * recorded, not run; copies from or to the host and waits are not allowed.
     */
    void beginCapture();

    /** Ends the capture and makes what it recorded launchable. */
    Graph endCapture();

    /** Ends a capture that failed, discarding what it recorded. */
    void abortCapture();

    /** Queues everything a graph recorded, in its order, as one launch. */
    void launchGraph(Graph graph);

    void destroyGraph(Graph graph);

    /**
     * Queues a kernel: args are {@link Address}, Integer (s32), Long (s64), Float (f32) or long[]
     * (a struct of 64-bit fields passed by value).
     */
    void launch(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object... args);

    void synchronize();

    String name();

    @Override
    void close();
}
