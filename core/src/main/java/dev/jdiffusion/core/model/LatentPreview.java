package dev.jdiffusion.core.model;

/**
 * A cheap look at a latent: each pixel's RGB as a fixed linear map of its latent channels, the
 * widely used least-squares fit of the VAE decoder at latent resolution (A1111's "Approx cheap",
 * ComfyUI's latent2rgb), applied to the latent as the UNet sees it (after the scale factor). The
 * result is in the VAE's [−1, 1] range, 8 times smaller than the decoded picture.
 */
public record LatentPreview(double[][] factors) {
    /** SD 1.x and 2.x: rows are latent channels, columns R, G, B. */
    public static final LatentPreview SD = new LatentPreview(new double[][] {
        {0.298, 0.207, 0.208},
        {0.187, 0.286, 0.173},
        {-0.158, 0.189, 0.264},
        {-0.184, -0.271, -0.473},
    });
    /** SDXL. */
    public static final LatentPreview SDXL = new LatentPreview(new double[][] {
        {0.3448, 0.4168, 0.4395},
        {-0.1953, -0.0290, 0.0250},
        {0.1074, 0.0886, -0.0163},
        {-0.3730, -0.2499, -0.2088},
    });

    public LatentPreview {
        for (double[] row : factors) {
            if (row.length != 3) {
                throw new IllegalArgumentException("a latent preview maps each channel to R, G and B, got " + row.length
                        + " values in a row");
            }
        }
        factors = factors.clone();
    }

    /** The [3, h, w] RGB (in [−1, 1] before clamping) of the [C, h, w] latent starting at {@code offset}. */
    public double[] rgb(double[] latent, int offset, int height, int width) {
        int plane = height * width;
        if (offset < 0 || offset + factors.length * plane > latent.length) {
            throw new IllegalArgumentException("a latent of " + factors.length + "x" + height + "x" + width + " at " + offset
                    + " does not fit in " + latent.length + " values");
        }
        double[] out = new double[3 * plane];
        for (int c = 0; c < factors.length; c++) {
            for (int k = 0; k < 3; k++) {
                double f = factors[c][k];
                for (int i = 0; i < plane; i++) {
                    out[k * plane + i] += f * latent[offset + c * plane + i];
                }
            }
        }
        return out;
    }
}
