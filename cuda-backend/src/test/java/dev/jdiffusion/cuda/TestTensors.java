package dev.jdiffusion.cuda;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Random;

/** Random host tensors for the tests of the CUDA backend and of the modules that use its test jar. */
public final class TestTensors {
    private TestTensors() {
    }

    /** Normal values of standard deviation {@code sigma} from {@code r}, stored as {@code type}. */
    public static Tensor gaussian(Random r, DType type, double sigma, int... shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (sigma * r.nextGaussian());
        }
        return type == DType.F32 ? Tensor.of(v, shape) : Tensor.ofHalf(v, type, shape);
    }
}
