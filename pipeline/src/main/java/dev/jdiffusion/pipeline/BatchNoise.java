package dev.jdiffusion.pipeline;

import dev.jdiffusion.samplers.NoiseSource;
import dev.jdiffusion.samplers.SeededNoise;

/** The noise of one model run of a batch: a stream per image (A1111) or one for the whole batch (ComfyUI). */
final class BatchNoise {
    private BatchNoise() {
    }

    /** Draws of {@code b · per} values; image i of the batch has seed {@code firstSeed + i}. */
    static NoiseSource of(GenerationRequest r, long firstSeed, int b, int per) {
        if (r.streamPerBatch()) {
            SeededNoise one = SeededNoise.of(r.rng(), firstSeed, b * per);
            return (s, sn) -> one.next();
        }
        SeededNoise[] streams = new SeededNoise[b];
        for (int i = 0; i < b; i++) {
            streams[i] = SeededNoise.of(r.rng(), firstSeed + i, per);
        }
        return (s, sn) -> {
            double[] all = new double[b * per];
            for (int i = 0; i < b; i++) {
                System.arraycopy(streams[i].next(), 0, all, i * per, per);
            }
            return all;
        };
    }
}
