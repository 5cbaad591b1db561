package dev.jdiffusion.samplers.rng;

/**
 * PyTorch's CPU random generator ({@code torch.Generator().manual_seed(seed)}) and its
 * {@code torch.randn}: a 32-bit Mersenne Twister, and normal values by Box–Muller, element by
 * element (with one cached value) for tensors under 16 elements and in blocks of 16 for larger
 * ones. The same seed gives the same starting noise as ComfyUI and A1111's "CPU" source.
 *
 * <p>For float tensors of 16 elements and more torch has two kernels that differ by up to 2e-6:
 * {@link Kernel#AVX2} (avx_mathfun polynomials; what torch picks on x86 CPUs with AVX2) and
 * {@link Kernel#PORTABLE} (libm; other CPUs, and builds that dispatch their AVX-512 kernel).
 */
public final class TorchCpuGenerator {
    /** Which of torch's float32 normal kernels to reproduce. */
    public enum Kernel { AVX2, PORTABLE }

    private final Kernel kernel;
    private static final int N = 624;
    private static final int M = 397;
    private final int[] mt = new int[N];
    private int index;
    private boolean hasCachedNormal;
    private double cachedNormal;

    /** A generator that reproduces torch's AVX2 kernel (the usual one on x86). */
    public TorchCpuGenerator(long seed) {
        this(seed, Kernel.AVX2);
    }

    public TorchCpuGenerator(long seed, Kernel kernel) {
        this.kernel = kernel;
        manualSeed(seed);
    }

    /** Reseeds (seeds of 2^32 and above wrap, as torch's do) and forgets the cached normal. */
    public void manualSeed(long seed) {
        mt[0] = (int) seed;
        for (int i = 1; i < N; i++) {
            mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
        }
        index = N;
        hasCachedNormal = false;
    }

    /** The next 32-bit output of the Mersenne Twister, as an unsigned value. */
    public long nextU32() {
        if (index >= N) {
            twist();
        }
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    private void twist() {
        for (int i = 0; i < N; i++) {
            int y = (mt[i] & 0x80000000) | (mt[(i + 1) % N] & 0x7fffffff);
            int next = mt[(i + M) % N] ^ (y >>> 1);
            if ((y & 1) != 0) {
                next ^= 0x9908b0df;
            }
            mt[i] = next;
        }
        index = 0;
    }

    private float uniformFloat() {
        return (nextU32() & 0xFFFFFF) / (float) (1 << 24);
    }

    private double uniformDouble() {
        long hi = nextU32();
        long lo = nextU32();
        return ((hi << 32 | lo) & ((1L << 53) - 1)) / (double) (1L << 53);
    }

    /** One value of {@code normal_distribution<double>}: Box–Muller with the second value cached. */
    private double scalarNormal() {
        if (hasCachedNormal) {
            hasCachedNormal = false;
            return cachedNormal;
        }
        double u1 = uniformDouble();
        double u2 = uniformDouble();
        double r = Math.sqrt(-2 * Math.log(1 - u2));
        double theta = 2 * Math.PI * u1;
        cachedNormal = r * Math.sin(theta);
        hasCachedNormal = true;
        return r * Math.cos(theta);
    }

    /** {@code torch.randn(n)} in float32. */
    public float[] randn(int n) {
        float[] v = new float[n];
        if (n < 16) {
            for (int i = 0; i < n; i++) {
                v[i] = (float) scalarNormal();
            }
            return v;
        }
        for (int i = 0; i < n; i++) {
            v[i] = uniformFloat();
        }
        for (int b = 0; b + 16 <= n; b += 16) {
            boxMuller16(v, b);
        }
        if (n % 16 != 0) {
            for (int i = n - 16; i < n; i++) {
                v[i] = uniformFloat();
            }
            boxMuller16(v, n - 16);
        }
        return v;
    }

    private void boxMuller16(float[] v, int at) {
        if (kernel == Kernel.AVX2) {
            for (int j = 0; j < 8; j++) {
                float u1 = 1 - v[at + j];
                float u2 = v[at + j + 8];
                float radius = (float) Math.sqrt(-2f * AvxMathFun.log(u1));
                float[] sc = AvxMathFun.sincos(6.2831855f * u2);
                v[at + j] = radius * sc[1];
                v[at + j + 8] = radius * sc[0];
            }
            return;
        }
        for (int j = 0; j < 8; j++) {
            float u1 = 1 - v[at + j];
            float u2 = v[at + j + 8];
            float radius = (float) Math.sqrt(-2 * (float) Math.log(u1));
            float theta = (float) (2.0 * Math.PI * u2);
            v[at + j] = radius * (float) Math.cos(theta);
            v[at + j + 8] = radius * (float) Math.sin(theta);
        }
    }

    /** {@code torch.randn(n, dtype=torch.float64)}. */
    public double[] randnDouble(int n) {
        double[] v = new double[n];
        if (n < 16) {
            for (int i = 0; i < n; i++) {
                v[i] = scalarNormal();
            }
            return v;
        }
        for (int i = 0; i < n; i++) {
            v[i] = uniformDouble();
        }
        for (int b = 0; b + 16 <= n; b += 16) {
            boxMuller16(v, b);
        }
        if (n % 16 != 0) {
            for (int i = n - 16; i < n; i++) {
                v[i] = uniformDouble();
            }
            boxMuller16(v, n - 16);
        }
        return v;
    }

    private static void boxMuller16(double[] v, int at) {
        for (int j = 0; j < 8; j++) {
            double u1 = 1 - v[at + j];
            double u2 = v[at + j + 8];
            double radius = Math.sqrt(-2 * Math.log(u1));
            double theta = 2.0 * Math.PI * u2;
            v[at + j] = radius * Math.cos(theta);
            v[at + j + 8] = radius * Math.sin(theta);
        }
    }
}
