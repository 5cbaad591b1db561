package dev.jdiffusion.checkpoint.detect;

/** The model families jdiffusion tells apart. */
public enum ModelFamily {
    /** Stable Diffusion 1.x: OpenAI CLIP ViT-L/14 text encoder, convolutional transformer projections. */
    SD1,
    /** Stable Diffusion 2.x: OpenCLIP ViT-H/14 text encoder, linear transformer projections. */
    SD2,
    /** SDXL base: two text encoders (CLIP ViT-L and OpenCLIP bigG), size and crop conditioning. */
    SDXL_BASE,
    /** SDXL refiner: the OpenCLIP bigG encoder only, aesthetic-score conditioning. */
    SDXL_REFINER
}
