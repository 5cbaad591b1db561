package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.samplers.DiffusionModel;

/**
 * The UNet as the samplers see it ({@link DiffusionModel}): a batch of latents in double precision,
 * one real timestep for all of them, and the cross-attention context of each batch item (for CFG:
 * the negative prompt's for the first half, the prompt's for the second, as
 * {@link dev.jdiffusion.samplers.PairedDenoiser} orders them). The samplers work in host memory in
 * double precision; each evaluation sends the latents to the UNet's backend and takes its output back.
 */
public final class UNetModel implements DiffusionModel {
    private final UNet unet;
    private final Tensor context;
    private final Tensor y;
    private final int[] latentShape;
    private final UNetGraph graph;

    /** {@code latentShape}: one item's [C, H, W]; {@code context} [B, T, D]; {@code y} [B, adm] or null. */
    public UNetModel(UNet unet, Tensor context, Tensor y, int... latentShape) {
        this(unet, context, y, null, latentShape);
    }

    /** As {@link #UNetModel(UNet, Tensor, Tensor, int...)}, the steps run as a CUDA graph where {@code graph} is not null. */
    UNetModel(UNet unet, Tensor context, Tensor y, UNetGraph graph, int... latentShape) {
        this.unet = unet;
        this.context = context;
        this.y = y;
        this.graph = graph;
        this.latentShape = latentShape.clone();
    }

    @Override
    public double[] apply(double[] scaledX, double timestep) {
        int per = latentShape[0] * latentShape[1] * latentShape[2];
        int b = scaledX.length / per;
        if (b * per != scaledX.length || b != context.dim(0)) {
            throw new IllegalArgumentException(scaledX.length + " latent values do not make " + context.dim(0)
                    + " latents of " + java.util.Arrays.toString(latentShape));
        }
        float[] x = new float[scaledX.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) scaledX[i];
        }
        float[] t = new float[b];
        java.util.Arrays.fill(t, (float) timestep);
        Tensor latents = Tensor.of(x, b, latentShape[0], latentShape[1], latentShape[2]);
        float[] out = graph == null ? null : graph.apply(latents, t, context, y);
        if (out == null) {
            try (Backend.Scope s = unet.backend().scope()) {
                out = unet.backend().toHost(unet.forward(latents, t, context, y, null)).toFloatArray();
            }
        }
        double[] r = new double[out.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = out[i];
        }
        return r;
    }
}
