package dev.jdiffusion.checkpoint;

import java.util.Map;

/**
 * An opened checkpoint of any format: its tensors by name, in the file's order, and its string
 * metadata. Tensors are read lazily and stay valid until {@link #close()}.
 */
public interface Checkpoint extends AutoCloseable {
    /** What was opened (a path), for messages. */
    String source();

    /** The tensors in the file's order. */
    Map<String, StoredTensor> tensors();

    /** String metadata ({@code __metadata__} of safetensors; empty where a format has none). */
    Map<String, String> metadata();

    /** The tensor called {@code name}, or an exception that names the checkpoint and the key. */
    default StoredTensor tensor(String name) {
        StoredTensor t = tensors().get(name);
        if (t == null) {
            throw new IllegalArgumentException(source() + " has no tensor \"" + name + "\"");
        }
        return t;
    }

    @Override
    void close();
}
