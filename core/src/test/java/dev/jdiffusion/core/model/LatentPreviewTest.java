package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LatentPreviewTest {
    @Test
    void eachLatentChannelAddsItsRowOfColourAtItsPixel() {
        // two latents of 4 channels, 1x2 pixels; the second has channel 0 = 1 at pixel 0 and channel 3 = -2 at pixel 1
        double[] latent = new double[16];
        latent[8] = 1;
        latent[8 + 3 * 2 + 1] = -2;
        double[] rgb = LatentPreview.SD.rgb(latent, 8, 1, 2);
        assertArrayEquals(new double[] {0.298, 2 * 0.184, 0.207, 2 * 0.271, 0.208, 2 * 0.473}, rgb, 1e-12);
        assertArrayEquals(new double[6], LatentPreview.SDXL.rgb(latent, 0, 1, 2), 0);
        assertThrows(IllegalArgumentException.class, () -> LatentPreview.SD.rgb(latent, 9, 1, 2));
        assertThrows(IllegalArgumentException.class, () -> new LatentPreview(new double[][] {{1, 2}}));
    }
}
