package dev.jdiffusion.checkpoint;

import java.io.IOException;

/** A checkpoint file is malformed, unsupported or unsafe; the message names the file and the problem. */
public class CheckpointFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    public CheckpointFormatException(String message) {
        super(message);
    }

    public CheckpointFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
