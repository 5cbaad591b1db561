package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.tensor.Tensor;

/** Between the VAE's images ({@code [N, 3, H, W]}, nominally in [−1, 1]) and 8-bit RGB. */
public final class Pixels {
    private Pixels() {
    }

    /** 8-bit values, NCHW: round((clamp((v + 1)/2, 0, 1)·255), half up). */
    public static byte[] fromImage(Tensor image) {
        float[] v = image.toFloatArray();
        byte[] out = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = toByte(v[i]);
        }
        return out;
    }

    /** One value in [−1, 1] as 8 bits: round(clamp((v + 1)/2, 0, 1)·255), half up. */
    static byte toByte(double v) {
        double x = Math.min(1, Math.max(0, (v + 1.0) / 2));
        return (byte) (int) Math.floor(x * 255 + 0.5);
    }

    /** An image for the VAE encoder: v / 127.5 − 1, NCHW. */
    public static Tensor toImage(byte[] pixels, int n, int height, int width) {
        if (pixels.length != n * 3 * height * width) {
            throw new IllegalArgumentException(pixels.length + " bytes are not " + n + " RGB images of " + width + "×" + height);
        }
        float[] v = new float[pixels.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((pixels[i] & 0xFF) / 127.5 - 1);
        }
        return Tensor.of(v, n, 3, height, width);
    }
}
