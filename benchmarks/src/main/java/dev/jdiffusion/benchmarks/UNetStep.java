package dev.jdiffusion.benchmarks;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.CudaGraph;
import java.util.ArrayList;
import java.util.List;

/**
 * One UNet evaluation as the pipeline runs it, for the benchmarks: eager, or on a GPU as one
 * captured CUDA graph; with the host round trip (the latents in, the output back, as the pipeline's
 * host samplers need) or without it (latents and timesteps left on the device, the stream waited
 * for: what a step would cost with the samplers on the device).
 */
final class UNetStep implements AutoCloseable {
    private final Backend backend;
    private final UNet unet;
    private final boolean roundTrip;
    private final float[] timesteps;
    private final Tensor context;
    private final Tensor y;
    private Tensor latent;
    /** Eager with the round trip off, the timesteps on the device (else the step sends them, as the pipeline does). */
    private Tensor deviceTimesteps;
    private CudaGraph graph;

    /**
     * A step of {@code unet} on {@code latent} (host) at {@code timesteps} with {@code context} and,
     * for SDXL, the vector input {@code y} (else null), both already on the backend.
     */
    UNetStep(Backend backend, UNet unet, Tensor latent, float[] timesteps, Tensor context, Tensor y, boolean cudaGraph,
             boolean roundTrip) {
        this.backend = backend;
        this.unet = unet;
        this.roundTrip = roundTrip;
        this.timesteps = timesteps.clone();
        this.context = context;
        this.y = y;
        this.latent = latent;
        boolean gpu = backend instanceof CudaBackend;
        if ((cudaGraph || !roundTrip) && !gpu) {
            throw new IllegalArgumentException((cudaGraph ? "cudaGraph=true" : "roundTrip=false") + " needs device=cuda");
        }
        Tensor t = Tensor.of(this.timesteps, this.timesteps.length);
        if (!roundTrip) {
            this.latent = backend.upload(latent);
        }
        if (cudaGraph) {
            CudaBackend cuda = (CudaBackend) backend;
            List<Tensor> like = new ArrayList<>(List.of(this.latent, t, context));
            if (y != null) {
                like.add(y);
            }
            graph = cuda.capture(like, in -> unet.forward(in[0], in[1], in[2], in.length > 3 ? in[3] : null, null));
            // the latents too when they stay on the device; else each run sends them
            for (int i = roundTrip ? 1 : 0; i < like.size(); i++) {
                cuda.copyInto(like.get(i), graph.inputs()[i]);
            }
        } else if (!roundTrip) {
            deviceTimesteps = backend.upload(t);
        }
    }

    /** Runs the step: its output on the host, or with {@code roundTrip} off, null once the device has finished it. */
    Tensor run() {
        if (graph != null) {
            CudaBackend cuda = (CudaBackend) backend;
            if (roundTrip) {
                cuda.copyInto(latent, graph.inputs()[0]);
            }
            graph.run();
            if (!roundTrip) {
                cuda.synchronize();
                return null;
            }
            return backend.toHost(graph.output());
        }
        try (Backend.Scope s = backend.scope()) {
            if (!roundTrip) {
                unet.forward(latent, deviceTimesteps, context, y, null);
                ((CudaBackend) backend).synchronize();
                return null;
            }
            return backend.toHost(unet.forward(latent, timesteps, context, y, null));
        }
    }

    @Override
    public void close() {
        if (graph != null) {
            graph.close();
        }
    }
}
