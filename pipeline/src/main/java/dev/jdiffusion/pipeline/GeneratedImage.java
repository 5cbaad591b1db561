package dev.jdiffusion.pipeline;

/** One generated picture: 8-bit RGB (NCHW: the red plane, then green, then blue), its seed and the A1111 parameters text. */
public record GeneratedImage(byte[] rgb, int width, int height, long seed, String parameters) {
}
