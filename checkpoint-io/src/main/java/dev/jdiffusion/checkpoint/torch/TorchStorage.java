package dev.jdiffusion.checkpoint.torch;

import dev.jdiffusion.checkpoint.StoredType;
import java.lang.foreign.MemorySegment;
import java.util.Map;

/**
 * A torch storage: a flat run of elements of one type, named by its key in the file. Tensors are
 * views of storages; two tensors that name the same key share it.
 */
public final class TorchStorage {
    /** torch's typed storage classes (module {@code torch}) and the element type each holds. */
    static final Map<String, StoredType> TYPES = Map.ofEntries(
            Map.entry("DoubleStorage", StoredType.F64),
            Map.entry("FloatStorage", StoredType.F32),
            Map.entry("HalfStorage", StoredType.F16),
            Map.entry("BFloat16Storage", StoredType.BF16),
            Map.entry("LongStorage", StoredType.I64),
            Map.entry("IntStorage", StoredType.I32),
            Map.entry("ShortStorage", StoredType.I16),
            Map.entry("CharStorage", StoredType.I8),
            Map.entry("ByteStorage", StoredType.U8),
            Map.entry("BoolStorage", StoredType.BOOL),
            Map.entry("Float8_e4m3fnStorage", StoredType.F8_E4M3),
            Map.entry("Float8_e5m2Storage", StoredType.F8_E5M2));

    private final StoredType type;
    private final String key;
    private final long numel;
    private MemorySegment bytes;

    TorchStorage(StoredType type, String key, long numel) {
        this.type = type;
        this.key = key;
        this.numel = numel;
    }

    public StoredType type() {
        return type;
    }

    public String key() {
        return key;
    }

    public long numel() {
        return numel;
    }

    boolean isResolved() {
        return bytes != null;
    }

    void resolve(MemorySegment b) {
        bytes = b;
    }

    /** The storage's bytes (a view of the file). */
    MemorySegment bytes() {
        return bytes;
    }
}
