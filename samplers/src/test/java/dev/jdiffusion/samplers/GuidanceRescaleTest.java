package dev.jdiffusion.samplers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * CFG rescale (Lin et al. 2023, §3.4) and the zero-terminal-SNR schedule, checked against their
 * definitions: the rescaled guided v has the prompt's standard deviation item by item, φ mixes
 * linearly, φ = 0 is plain CFG; the rescaled schedule keeps ᾱ₀, ends at A1111's stand-in for 0 and is
 * an affine map of the old one in sqrt(ᾱ).
 */
class GuidanceRescaleTest {
    private static final int PER = 50;

    /** A model whose uncond and cond are fixed random vectors, the same for every call. */
    private static PairedDenoiser fixed(double[] uncond, double[] cond) {
        return (blocks, sigma) -> {
            double[] out = new double[blocks.length];
            System.arraycopy(uncond, 0, out, 0, uncond.length);
            System.arraycopy(cond, 0, out, uncond.length, cond.length);
            return out;
        };
    }

    private static double[] random(long seed, int n, double scale, double offset) {
        Random r = new Random(seed);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = offset + scale * r.nextGaussian();
        }
        return v;
    }

    private static double[] v(double[] x, double[] denoised, double sigma, int from, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = (x[from + i] / (sigma * sigma + 1) - denoised[from + i]) * Math.sqrt(sigma * sigma + 1) / sigma;
        }
        return v;
    }

    private static double std(double[] v) {
        double m = 0;
        for (double e : v) {
            m += e;
        }
        m /= v.length;
        double s = 0;
        for (double e : v) {
            s += (e - m) * (e - m);
        }
        return Math.sqrt(s / (v.length - 1));
    }

    @Test
    void rescaledGuidanceHasThePromptsSpreadPerItem() {
        double sigma = 2.7;
        double[] x = random(1, 2 * PER, 3, 0);
        double[] uncond = random(2, 2 * PER, 0.5, 0.1);
        double[] cond = random(3, 2 * PER, 0.7, -0.2);
        // the second item's spread is very different, so a batch-wide std would not satisfy both
        for (int i = PER; i < 2 * PER; i++) {
            cond[i] *= 10;
        }
        PairedDenoiser model = fixed(uncond, cond);
        double[] plain = new CfgDenoiser(model, 7).denoise(x, sigma);
        assertArrayEquals(plain, new CfgDenoiser(model, 7, new double[] {1}, 0, PER).denoise(x, sigma), 0);
        double[] full = new CfgDenoiser(model, 7, new double[] {1}, 1, PER).denoise(x, sigma);
        double[] half = new CfgDenoiser(model, 7, new double[] {1}, 0.5, PER).denoise(x, sigma);
        for (int item = 0; item < 2; item++) {
            int from = item * PER;
            double[] vCond = v(x, cond, sigma, from, PER);
            double[] vPlain = v(x, plain, sigma, from, PER);
            double[] vFull = v(x, full, sigma, from, PER);
            double[] vHalf = v(x, half, sigma, from, PER);
            assertEquals(std(vCond), std(vFull), 1e-9 * std(vCond), "item " + item);
            assertTrue(Math.abs(std(vPlain) - std(vCond)) > 0.5 * std(vCond), "guidance widens the spread");
            double factor = std(vCond) / std(vPlain);
            for (int i = 0; i < PER; i++) {
                assertEquals(vPlain[i] * factor, vFull[i], 1e-9 * Math.abs(vPlain[i]) + 1e-12);
                assertEquals(0.5 * vFull[i] + 0.5 * vPlain[i], vHalf[i], 1e-9 * Math.abs(vPlain[i]) + 1e-12);
            }
        }
        // the whole batch as one item is a different (wrong for batches) answer
        assertNotEquals(full[0], new CfgDenoiser(model, 7, new double[] {1}, 1, 0).denoise(x, sigma)[0], 1e-6);
    }

    @Test
    void severalPromptsRescaleToTheirWeightedMix() {
        double sigma = 1.3;
        double[] x = random(4, PER, 1.5, 0);
        double[] uncond = random(5, PER, 0.4, 0);
        double[] a = random(6, PER, 0.6, 0.3);
        double[] b = random(7, PER, 0.9, -0.1);
        double[] w = {0.8, 0.4};
        PairedDenoiser model = (blocks, s) -> {
            double[] out = new double[blocks.length];
            System.arraycopy(uncond, 0, out, 0, PER);
            System.arraycopy(a, 0, out, PER, PER);
            System.arraycopy(b, 0, out, 2 * PER, PER);
            return out;
        };
        double[] mix = new double[PER];
        for (int i = 0; i < PER; i++) {
            mix[i] = uncond[i] + w[0] * (a[i] - uncond[i]) + w[1] * (b[i] - uncond[i]);
        }
        double[] full = new CfgDenoiser(model, 5, w, 1, PER).denoise(x, sigma);
        double expected = std(v(x, mix, sigma, 0, PER));
        assertEquals(expected, std(v(x, full, sigma, 0, PER)), 1e-9 * expected);
    }

    @Test
    void badRescaleArgumentsAreRefused() {
        PairedDenoiser model = fixed(new double[PER], new double[PER]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new CfgDenoiser(model, 7, new double[] {1}, 1.5, PER));
        assertTrue(e.getMessage().contains("CFG rescale"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new CfgDenoiser(model, 7, new double[] {1}, Double.NaN, PER));
        e = assertThrows(IllegalArgumentException.class,
                () -> new CfgDenoiser(model, 7, new double[] {1}, 0.7, 7).denoise(new double[PER], 1));
        assertTrue(e.getMessage().contains("whole items"), e.getMessage());
    }

    @Test
    void zeroTerminalSnrKeepsTheFirstAlphaAndEndsAtZeroSnr() {
        DiscreteSchedule sd = DiscreteSchedule.stableDiffusion();
        DiscreteSchedule z = sd.zeroTerminalSnr();
        double[] old = sd.alphasCumprod();
        double[] now = z.alphasCumprod();
        int last = old.length - 1;
        assertEquals(old[0], now[0], 1e-15);
        assertEquals(DiscreteSchedule.ZERO_TERMINAL_ALPHA_CUMPROD, now[last], 0);
        // sqrt(ᾱ) is an affine image of the old one that sends the old last value to 0
        double slope = Math.sqrt(now[0]) / (Math.sqrt(old[0]) - Math.sqrt(old[last]));
        for (int t = 0; t < last; t++) {
            assertEquals(slope * (Math.sqrt(old[t]) - Math.sqrt(old[last])), Math.sqrt(now[t]), 1e-12, "t=" + t);
            assertTrue(now[t] <= old[t] + 1e-15, "the rescaled schedule is noisier at t=" + t);
        }
        assertEquals(Math.sqrt((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08), z.sigmaMax(), 1e-6);
        assertTrue(z.sigmaMax() > 4500 && z.sigmaMax() < 4530, "sigma_max " + z.sigmaMax());
        // the float32 schedule stays float32
        for (double a : DiscreteSchedule.stableDiffusionFloat32().zeroTerminalSnr().alphasCumprod()) {
            assertEquals((float) a, a, 0);
        }
    }
}
