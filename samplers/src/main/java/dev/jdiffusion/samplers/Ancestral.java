package dev.jdiffusion.samplers;

/** Parameter checks shared by the samplers that add noise (eta, s_noise). */
final class Ancestral {
    private Ancestral() {
    }

    static void check(double eta, double sNoise) {
        if (!(eta >= 0) || Double.isInfinite(eta)) {
            throw new IllegalArgumentException("eta must be finite and >= 0, got " + eta);
        }
        if (!(sNoise >= 0) || Double.isInfinite(sNoise)) {
            throw new IllegalArgumentException("s_noise must be finite and >= 0, got " + sNoise);
        }
    }
}
