package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.CudaGraph;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A UNet step on a CUDA backend as one CUDA graph: recorded at the first step, replayed at every
 * other with the new latents and timesteps copied into its inputs (the conditioning too when it
 * changes, as with prompt editing), so that a step costs one launch instead of a few hundred.
 * Recorded again when the shapes change (another batch size, a longer prompt); where a step cannot
 * be recorded it says why once and the steps run kernel by kernel.
 */
final class UNetGraph implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(UNetGraph.class);

    private final CudaBackend cuda;
    private final UNet unet;
    private CudaGraph graph;
    private List<Tensor> shapes;
    /** The conditioning the graph's inputs hold (copied again only when another one comes). */
    private Tensor heldContext;
    private Tensor heldY;
    private boolean unsupported;

    UNetGraph(CudaBackend cuda, UNet unet) {
        this.cuda = cuda;
        this.unet = unet;
    }

    /**
     * The UNet's output on the host for latents x (host, [B, C, H, W]) at the timesteps t (one per
     * item), conditioned on {@code context} and {@code y} (null: none); null when the step cannot run
     * as a graph.
     */
    float[] apply(Tensor x, float[] t, Tensor context, Tensor y) {
        if (unsupported) {
            return null;
        }
        List<Tensor> like = new ArrayList<>(List.of(x, Tensor.of(t, t.length), context));
        if (y != null) {
            like.add(y);
        }
        if (graph == null || !sameShapes(like)) {
            close();
            try {
                graph = cuda.capture(like, in -> unet.forward(in[0], in[1], in[2], in.length > 3 ? in[3] : null, null));
                shapes = like;
            } catch (CudaGraph.CaptureException e) {
                unsupported = true;
                LOG.warn("the UNet step cannot be recorded as a CUDA graph, it runs kernel by kernel: {}", e.getMessage());
                return null;
            }
        }
        Tensor[] in = graph.inputs();
        cuda.copyInto(x, in[0]);
        cuda.copyInto(like.get(1), in[1]);
        if (context != heldContext) {
            cuda.copyInto(context, in[2]);
            heldContext = context;
        }
        if (y != null && y != heldY) {
            cuda.copyInto(y, in[3]);
            heldY = y;
        }
        graph.run();
        return cuda.toHost(graph.output()).toFloatArray();
    }

    private boolean sameShapes(List<Tensor> like) {
        if (like.size() != shapes.size()) {
            return false;
        }
        for (int i = 0; i < like.size(); i++) {
            if (!Arrays.equals(like.get(i).shape(), shapes.get(i).shape()) || like.get(i).dtype() != shapes.get(i).dtype()) {
                return false;
            }
        }
        return true;
    }

    /** Gives the graph's device memory back. */
    @Override
    public void close() {
        if (graph != null) {
            graph.close();
            graph = null;
            shapes = null;
            heldContext = null;
            heldY = null;
        }
    }
}
