package dev.jdiffusion.checkpoint;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

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

    /**
     * Every tensor {@link StoredTensor#load loaded} as {@code target} (integer tensors keep their
     * type), in the file's order; tensors are loaded on all cores, so {@code allocator} must be
     * usable from any thread (a shared or automatic arena).
     */
    default Map<String, MemorySegment> loadAll(StoredType target, SegmentAllocator allocator) {
        List<Map.Entry<String, StoredTensor>> entries = new ArrayList<>(tensors().entrySet());
        MemorySegment[] loaded = new MemorySegment[entries.size()];
        IntStream.range(0, loaded.length).parallel()
                .forEach(i -> loaded[i] = entries.get(i).getValue().load(target, allocator));
        Map<String, MemorySegment> out = new LinkedHashMap<>();
        for (int i = 0; i < loaded.length; i++) {
            out.put(entries.get(i).getKey(), loaded[i]);
        }
        return out;
    }

    @Override
    void close();
}
