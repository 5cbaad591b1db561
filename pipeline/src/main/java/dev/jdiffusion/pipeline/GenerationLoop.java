package dev.jdiffusion.pipeline;

import dev.jdiffusion.samplers.GuidedDenoiser;
import dev.jdiffusion.samplers.NoiseSource;
import dev.jdiffusion.samplers.SamplerNames;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

/**
 * What every model's generation shares: the seed (−1: random), the sampler and schedule by name, the
 * sigmas (cut by the strength rule for img2img), then per run of the batch the noise streams, the
 * start latent, the sampler with progress, and one picture per image with its parameters.
 */
final class GenerationLoop {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(GenerationLoop.class);
    /** The model's side of a request. */
    interface Model {
        /** The sigmas of n steps for the sampler and the schedule the user asked for ({@link SamplerNames.Resolved#sigmas}). */
        double[] sigmas(SamplerNames.Resolved sampler, String requestedSchedule, int steps);

        /** The guided denoiser for batches of b latents (built once per request). */
        GuidedDenoiser denoiser(int b, double cfgScale);

        /** Item i of a batch of latents as 8-bit RGB. */
        byte[] pixels(double[] latent, int item);
    }

    private GenerationLoop() {
    }

    /**
     * @param per the number of latent values of one image
     * @param init the img2img start latent (one image), or null for txt2img
     */
    static List<GeneratedImage> run(GenerationRequest r, Model model, int per, float[] init, String modelName,
                                    StableDiffusion.ProgressListener progress) {
        long base = r.seed() == -1 ? new SecureRandom().nextLong(1L << 32) : r.seed();
        SamplerNames.Resolved sampler = SamplerNames.resolve(r.sampler());
        String used = sampler.scheduleFor(r.scheduler());
        String scheduleName = used != null ? used : SamplerNames.AUTOMATIC;
        if (used == null && !r.scheduler().strip().equalsIgnoreCase(SamplerNames.AUTOMATIC)) {
            LOG.warn("{} steps through its own timesteps, as in A1111; the schedule \"{}\" is not used", sampler.name(),
                    r.scheduler());
        }
        IntFunction<double[]> sigmasFor = n -> model.sigmas(sampler, r.scheduler(), n);
        double[] sigmas = r.isImg2Img() ? r.strengthRule().sigmas(sigmasFor, r.steps(), r.denoisingStrength())
                : sigmasFor.apply(r.steps());
        int b = r.batchSize();
        GuidedDenoiser denoiser = sigmas.length > 0 ? model.denoiser(b, r.cfgScale() * sampler.cfgScaleMultiplier()) : null;
        List<GeneratedImage> images = new ArrayList<>();
        for (int run = 0; run < r.batchCount(); run++) {
            long firstSeed = base + (long) run * b;
            NoiseSource noise = BatchNoise.of(r, firstSeed, b, per);
            double[] x = noise.next(0, 0);
            for (int i = 0; i < x.length; i++) {
                double start = sigmas.length == 0 ? 0 : x[i] * sigmas[0];
                x[i] = init == null ? start : init[i % per] + start;
            }
            double[] latent = x;
            if (denoiser != null) {
                int total = sigmas.length - 1;
                int runIndex = run;
                latent = sampler.sampler().sample(denoiser, x, sigmas, noise,
                        st -> progress.onStep(runIndex, st.index(), total, st.sigma()));
            }
            for (int i = 0; i < b; i++) {
                long seed = firstSeed + i;
                images.add(new GeneratedImage(model.pixels(latent, i), r.width(), r.height(), seed,
                        InfoText.format(r, seed, sampler.name(), scheduleName, modelName)));
            }
        }
        return images;
    }
}
