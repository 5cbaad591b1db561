package dev.jdiffusion.samplers;

import dev.jdiffusion.samplers.rng.PhiloxGenerator;
import dev.jdiffusion.samplers.rng.TorchCpuGenerator;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A seeded stream of standard normal tensors of one size: the starting noise is the first draw, a
 * sampler's fresh noise the following ones, as AUTOMATIC1111 draws them from one generator per
 * image. The same seed gives the same stream. Three generators:
 * <ul>
 *   <li>{@link Generator#OWN}: jdiffusion's own (SplittableRandom, Box–Muller in double), fast and
 *       the same on every machine;</li>
 *   <li>{@link Generator#TORCH_CPU}: {@code torch.randn} on the CPU after {@code manual_seed}
 *       (A1111's "CPU" source, ComfyUI's noise), float32;</li>
 *   <li>{@link Generator#PHILOX}: {@code torch.randn} on a CUDA device as A1111 reproduces it on the
 *       CPU (its "NV" source), float32.</li>
 * </ul>
 * The sigma arguments of {@link #next} are ignored: every draw is independent of the step.
 */
public final class SeededNoise implements NoiseSource {
    /** Which random stream: see the class description. */
    public enum Generator {
        OWN, TORCH_CPU, PHILOX;

        /** By name, ignoring case: "own", "torch-cpu"/"cpu", "philox"/"nv"/"gpu". */
        public static Generator named(String name) {
            String n = name == null ? "" : name.strip().toLowerCase(Locale.ROOT).replace('_', '-');
            return switch (n) {
                case "own", "jdiffusion" -> OWN;
                case "torch-cpu", "cpu", "pytorch-cpu" -> TORCH_CPU;
                case "philox", "nv", "gpu", "cuda" -> PHILOX;
                default -> throw new IllegalArgumentException("unknown random generator \"" + name
                        + "\"; known: own, torch-cpu (cpu), philox (nv)");
            };
        }
    }

    private final Generator generator;
    private final long seed;
    private final int size;
    private final SplittableRandom own;
    private final TorchCpuGenerator torch;
    private final PhiloxGenerator philox;

    private SeededNoise(Generator generator, long seed, int size) {
        if (generator == null) {
            throw new IllegalArgumentException("no random generator given");
        }
        if (size < 1) {
            throw new IllegalArgumentException("noise needs at least one element, got " + size);
        }
        this.generator = generator;
        this.seed = seed;
        this.size = size;
        this.own = generator == Generator.OWN ? new SplittableRandom(seed) : null;
        this.torch = generator == Generator.TORCH_CPU ? new TorchCpuGenerator(seed) : null;
        this.philox = generator == Generator.PHILOX ? new PhiloxGenerator(seed) : null;
    }

    /** A stream of {@code size}-element draws from the generator seeded with {@code seed}. */
    public static SeededNoise of(Generator generator, long seed, int size) {
        return new SeededNoise(generator, seed, size);
    }

    public Generator generator() {
        return generator;
    }

    public long seed() {
        return seed;
    }

    /** The next draw (the first one is the starting noise of an image). */
    public double[] next() {
        return switch (generator) {
            case OWN -> ownNormals();
            case TORCH_CPU -> widen(torch.randn(size));
            case PHILOX -> widen(philox.randn(size));
        };
    }

    @Override
    public double[] next(double sigma, double sigmaNext) {
        return next();
    }

    private double[] ownNormals() {
        double[] z = new double[size];
        for (int i = 0; i < size; i += 2) {
            double u1 = 1 - own.nextDouble(); // in (0, 1]
            double u2 = own.nextDouble();
            double r = Math.sqrt(-2 * Math.log(u1));
            z[i] = r * Math.cos(2 * Math.PI * u2);
            if (i + 1 < size) {
                z[i + 1] = r * Math.sin(2 * Math.PI * u2);
            }
        }
        return z;
    }

    private static double[] widen(float[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = v[i];
        }
        return r;
    }
}
