package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class TilesTest {
    private static Tensor random(int... shape) {
        Random r = new Random(5);
        float[] v = new float[shape[0] * shape[1] * shape[2] * shape[3]];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Tensor.of(v, shape);
    }

    @Test
    void aLocalOperationGivesTheSameResultTiledAsWhole() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            Tensor x = random(2, 3, 37, 29);
            float[] whole = cpu.upsampleNearest2x(x).toFloatArray();
            Tensor tiled = Tiles.apply(x, 12, 4, 2, 1, cpu::upsampleNearest2x);
            assertArrayEquals(new int[] {2, 3, 74, 58}, tiled.shape());
            assertArrayEquals(whole, tiled.toFloatArray(), 1e-6f);
            // downscaling (an encoder's direction): average 2x2 blocks through a strided 2x2 convolution
            float[] k = {0.25f, 0.25f, 0.25f, 0.25f};
            float[] wv = new float[3 * 3 * 4];
            for (int ch = 0; ch < 3; ch++) {
                System.arraycopy(k, 0, wv, (ch * 3 + ch) * 4, 4);
            }
            Tensor avg = Tensor.of(wv, 3, 3, 2, 2);
            Tensor even = random(1, 3, 40, 24);
            assertArrayEquals(cpu.conv2d(even, avg, null, 2, 0).toFloatArray(),
                    Tiles.apply(even, 16, 8, 1, 2, t -> cpu.conv2d(t, avg, null, 2, 0)).toFloatArray(), 1e-6f);
        }
    }

    @Test
    void overlapsFadeLinearlyFromOneTileToTheNext() {
        // each tile's output is a constant: its index; one row of three tiles of 8 with overlap 4
        AtomicInteger calls = new AtomicInteger();
        Tensor x = Tensor.zeros(1, 1, 8, 16);
        Tensor out = Tiles.apply(x, 8, 4, 1, 1, t -> {
            float[] v = new float[t.dim(2) * t.dim(3)];
            java.util.Arrays.fill(v, calls.getAndIncrement());
            return Tensor.of(v, t.shape());
        });
        // tiles start every 4 pixels in both directions (rows 0 and 4, columns 0, 4, 8, 12), as diffusers places them
        assertEquals(8, calls.get());
        float[] row = java.util.Arrays.copyOfRange(out.toFloatArray(), 0, 16);
        // columns 0..3 from tile 0; tile 1 kept from column 4, its first columns faded in over tile 0's last ones
        assertEquals(0f, row[0]);
        assertEquals(0f, row[4], "ramp weight 0 at the start of the overlap");
        assertEquals(0.25f, row[5], 1e-6f);
        assertEquals(0.5f, row[6], 1e-6f);
        assertEquals(0.75f, row[7], 1e-6f);
        assertEquals(1.75f, row[11], 1e-6f);
    }

    @Test
    void anInputThatFitsOneTileIsPassedThroughAndBadTilesAreRejected() {
        Tensor x = Tensor.zeros(1, 1, 8, 8);
        Tensor[] seen = new Tensor[1];
        Tiles.apply(x, 8, 2, 1, 1, t -> seen[0] = t);
        assertSame(x, seen[0]);
        assertThrows(IllegalArgumentException.class, () -> Tiles.apply(x, 4, 4, 1, 1, t -> t));
    }
}
