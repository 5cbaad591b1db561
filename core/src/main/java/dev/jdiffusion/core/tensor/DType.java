package dev.jdiffusion.core.tensor;

/**
 * Element types of tensors. Computation is always float32; float16 and bfloat16 are storage
 * types for weights, converted to float32 where an op consumes them.
 */
public enum DType {
    F32(4),
    F16(2),
    BF16(2);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** True for the half-precision storage types. */
    public boolean isHalf() {
        return this != F32;
    }
}
