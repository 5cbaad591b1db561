package dev.jdiffusion.samplers.rng;

/**
 * A1111's "NV" random source ({@code modules/rng_philox.py}): Philox4x32-10 keyed by the seed,
 * counter (offset, 0, element, 0), Box–Muller in double on the two outputs. It imitates
 * {@code torch.randn} on a CUDA device, so images seeded on an NVIDIA GPU can be reproduced
 * anywhere. Each {@link #randn} call advances the offset by one.
 */
public final class PhiloxGenerator {
    private static final int M0 = 0xD2511F53;
    private static final int M1 = 0xCD9E8D57;
    private static final int W0 = 0x9E3779B9;
    private static final int W1 = 0xBB67AE85;
    private static final double A = (double) 2.3283064e-10f;
    private static final double B = (double) (float) (2.3283064e-10 * 6.2831855);

    private final long seed;
    private int offset;

    public PhiloxGenerator(long seed) {
        this.seed = seed;
    }

    /** {@code Generator(seed).randn(shape)} for n elements (row-major). */
    public float[] randn(int n) {
        float[] out = new float[n];
        int k0 = (int) seed;
        int k1 = (int) (seed >>> 32);
        for (int i = 0; i < n; i++) {
            int c0 = offset;
            int c1 = 0;
            int c2 = i;
            int c3 = 0;
            int key0 = k0;
            int key1 = k1;
            for (int round = 0; round < 10; round++) {
                long p0 = (c0 & 0xffffffffL) * (M0 & 0xffffffffL);
                long p1 = (c2 & 0xffffffffL) * (M1 & 0xffffffffL);
                int n0 = (int) (p1 >>> 32) ^ c1 ^ key0;
                int n1 = (int) p1;
                int n2 = (int) (p0 >>> 32) ^ c3 ^ key1;
                int n3 = (int) p0;
                c0 = n0;
                c1 = n1;
                c2 = n2;
                c3 = n3;
                if (round < 9) {
                    key0 += W0;
                    key1 += W1;
                }
            }
            double u = (c0 & 0xffffffffL) * A + A / 2;
            double v = (c1 & 0xffffffffL) * B + B / 2;
            out[i] = (float) (Math.sqrt(-2 * Math.log(u)) * Math.sin(v));
        }
        offset++;
        return out;
    }
}
