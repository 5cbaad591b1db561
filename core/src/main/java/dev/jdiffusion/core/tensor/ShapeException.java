package dev.jdiffusion.core.tensor;

/** An op was called with tensors whose shapes do not fit together; the message names them all. */
public class ShapeException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ShapeException(String message) {
        super(message);
    }
}
