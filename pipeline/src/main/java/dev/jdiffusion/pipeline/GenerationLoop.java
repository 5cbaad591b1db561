package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.text.PromptSchedule;
import dev.jdiffusion.samplers.CfgDenoiser;
import dev.jdiffusion.samplers.GuidedDenoiser;
import dev.jdiffusion.samplers.NoiseSource;
import dev.jdiffusion.samplers.PairedDenoiser;
import dev.jdiffusion.samplers.SamplerNames;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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

        /**
         * The model's estimate for blocks of latents at one sigma: block j (of {@code blocks.length / texts.size()}
         * values) under the prompt {@code texts.get(j)}, block 0 the negative prompt's. The prompts are plain
         * (edits and alternations resolved), emphasis syntax included.
         */
        double[] denoise(double[] blocks, double sigma, List<String> texts);

        /** How many times smaller than the picture a preview is. */
        int previewScale();

        /** A cheap 8-bit RGB look at item i of a batch of latents, {@link #previewScale()} times smaller than the picture. */
        byte[] preview(double[] latent, int item);

        /** Item i of a batch of latents as 8-bit RGB. */
        byte[] pixels(double[] latent, int item);

        /** Called before each run of the batch samples. */
        default void startRun() {
        }
    }

    private GenerationLoop() {
    }

    /**
     * @param per the number of latent values of one image
     * @param init the img2img start latent (one image), or null for txt2img
     */
    static List<GeneratedImage> run(GenerationRequest r, String prompt, Model model, int per, float[] init, String modelName,
                                    Map<String, String> extraParameters, StableDiffusion.ProgressListener progress) {
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
        int promptSteps = sampler.promptScheduleSteps(r.steps());
        List<PromptSchedule.Entry> negative = PromptSchedule.of(r.negativePrompt(), promptSteps);
        List<PromptSchedule.Weighted> prompts = PromptSchedule.composable(prompt, promptSteps);
        double[] weights = prompts.stream().mapToDouble(PromptSchedule.Weighted::weight).toArray();
        List<GeneratedImage> images = new ArrayList<>();
        for (int run = 0; run < r.batchCount(); run++) {
            long firstSeed = base + (long) run * b;
            model.startRun();
            NoiseSource noise = BatchNoise.of(r, firstSeed, b, per);
            double[] x = noise.next(0, 0);
            for (int i = 0; i < x.length; i++) {
                double start = sigmas.length == 0 ? 0 : x[i] * sigmas[0];
                x[i] = init == null ? start : init[i % per] + start;
            }
            double[] latent = x;
            if (sigmas.length > 0) {
                GuidedDenoiser denoiser = new CfgDenoiser(new PromptsAtEvaluation(model, negative, prompts),
                        r.cfgScale() * sampler.cfgScaleMultiplier(), weights, r.cfgRescale(), per);
                int total = sigmas.length - 1;
                int runIndex = run;
                int pw = r.width() / model.previewScale();
                int ph = r.height() / model.previewScale();
                latent = sampler.sampler().sample(denoiser, x, sigmas, noise, st -> progress.onStep(new Progress(runIndex,
                        st.index(), total, st.sigma(), b, item -> st.denoised() == null ? null
                        : new GeneratedImage(model.preview(st.denoised(), item), pw, ph, firstSeed + item, ""))));
            }
            for (int i = 0; i < b; i++) {
                long seed = firstSeed + i;
                images.add(new GeneratedImage(model.pixels(latent, i), r.width(), r.height(), seed,
                        InfoText.format(r, seed, sampler.name(), scheduleName, modelName, extraParameters)));
            }
        }
        return images;
    }

    /** The model under the prompts of each evaluation, counted from 0 for each run as A1111 counts. */
    private static final class PromptsAtEvaluation implements PairedDenoiser {
        private final Model model;
        private final List<PromptSchedule.Entry> negative;
        private final List<PromptSchedule.Weighted> prompts;
        private int evaluation;

        PromptsAtEvaluation(Model model, List<PromptSchedule.Entry> negative, List<PromptSchedule.Weighted> prompts) {
            this.model = model;
            this.negative = negative;
            this.prompts = prompts;
        }

        @Override
        public double[] denoisePair(double[] blocks, double sigma) {
            List<String> texts = new ArrayList<>();
            texts.add(PromptSchedule.at(negative, evaluation));
            for (PromptSchedule.Weighted p : prompts) {
                texts.add(PromptSchedule.at(p.schedule(), evaluation));
            }
            evaluation++;
            return model.denoise(blocks, sigma, texts);
        }
    }
}
