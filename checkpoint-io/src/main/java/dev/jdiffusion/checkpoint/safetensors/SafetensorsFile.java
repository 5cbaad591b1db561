package dev.jdiffusion.checkpoint.safetensors;

import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@code .safetensors} file, memory-mapped: opening reads and validates only the header; a
 * tensor's bytes are touched when it is used. F32, F16 and BF16 tensors are returned as views of
 * the mapping (a 2 GB fp16 file stays 2 GB); other types are widened to F32 on request.
 *
 * <p>Validation follows the reference implementation: header length within the file and at most
 * 100,000,000 bytes, a UTF-8 JSON object without duplicate keys, known dtypes, non-negative
 * shapes whose byte size matches {@code data_offsets}, and offsets that tile the data area exactly
 * (no overlap, no hole, nothing after the last tensor).
 */
public final class SafetensorsFile implements Checkpoint {
    /** The reference implementation's limit on the header size. */
    public static final long MAX_HEADER = 100_000_000L;

    /** One tensor's header entry; offsets are relative to the data area. */
    public record Entry(String name, StoredType type, long[] shape, long begin, long end) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        public int[] intShape() {
            int[] s = new int[shape.length];
            for (int i = 0; i < s.length; i++) {
                s[i] = Math.toIntExact(shape[i]);
            }
            return s;
        }
    }

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;
    private final Map<String, StoredTensor> tensors;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, Entry> entries,
                            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.entries = entries;
        this.metadata = metadata;
        Map<String, StoredTensor> views = new LinkedHashMap<>();
        for (Entry e : entries.values()) {
            views.put(e.name(), StoredTensor.lazy(e.type(), e.shape(), () -> data.asSlice(e.begin(), e.end() - e.begin())));
        }
        this.tensors = Collections.unmodifiableMap(views);
    }

    public static SafetensorsFile open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw fail(path, "file has " + size + " bytes, fewer than the 8-byte header length");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            while (lenBuf.hasRemaining() && ch.read(lenBuf, lenBuf.position()) > 0) {
                // read fully
            }
            long headerLen = lenBuf.getLong(0);
            if (headerLen < 0 || headerLen > MAX_HEADER) {
                throw fail(path, "header length " + Long.toUnsignedString(headerLen) + " exceeds the limit of "
                        + MAX_HEADER + " bytes");
            }
            if (headerLen > size - 8) {
                throw fail(path, "header length " + headerLen + " is larger than the file (" + size + " bytes)");
            }
            if (headerLen < 2) {
                throw fail(path, "empty header (length " + headerLen + ")");
            }
            ByteBuffer hb = ByteBuffer.allocate((int) headerLen);
            while (hb.hasRemaining() && ch.read(hb, 8 + hb.position()) > 0) {
                // read fully
            }
            String header;
            try {
                header = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(hb.flip()).toString();
            } catch (CharacterCodingException e) {
                throw fail(path, "header is not valid UTF-8");
            }
            long dataLen = size - 8 - headerLen;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, Entry> entries = parseHeader(path, header, dataLen, metadata);
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 8 + headerLen, dataLen, arena);
            return new SafetensorsFile(path, arena, mapped, entries, metadata);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static CheckpointFormatException fail(Path path, String what) {
        return new CheckpointFormatException(path + ": not a valid safetensors file: " + what);
    }

    private static Map<String, Entry> parseHeader(Path path, String header, long dataLen, Map<String, String> metadata)
            throws CheckpointFormatException {
        Object root;
        try {
            root = Json.parse(header);
        } catch (IllegalArgumentException e) {
            throw fail(path, "header is not valid JSON: " + e.getMessage());
        }
        if (!(root instanceof Map<?, ?> map)) {
            throw fail(path, "header must be a JSON object");
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String name = (String) e.getKey();
            if (name.equals("__metadata__")) {
                if (!(e.getValue() instanceof Map<?, ?> md)) {
                    throw fail(path, "__metadata__ must be an object of strings");
                }
                for (Map.Entry<?, ?> m : md.entrySet()) {
                    if (!(m.getValue() instanceof String v)) {
                        throw fail(path, "__metadata__ value of \"" + m.getKey() + "\" is not a string");
                    }
                    metadata.put((String) m.getKey(), v);
                }
                continue;
            }
            entries.put(name, entry(path, name, e.getValue()));
        }
        List<Entry> byOffset = new ArrayList<>(entries.values());
        byOffset.sort((a, b) -> a.begin() != b.begin() ? Long.compare(a.begin(), b.begin()) : Long.compare(a.end(), b.end()));
        long at = 0;
        for (Entry en : byOffset) {
            if (en.begin() != at) {
                throw fail(path, en.begin() < at
                        ? "data_offsets of \"" + en.name() + "\" [" + en.begin() + ", " + en.end()
                        + "] overlap the previous tensor (which ends at " + at + ")"
                        : "bytes " + at + ".." + en.begin() + " of the data area belong to no tensor");
            }
            at = en.end();
        }
        if (at != dataLen) {
            throw fail(path, at < dataLen
                    ? (dataLen - at) + " bytes after the last tensor (data area " + dataLen + " bytes, tensors end at " + at + ")"
                    : "data area has " + dataLen + " bytes but the tensors need " + at + " (file truncated?)");
        }
        return Collections.unmodifiableMap(entries);
    }

    private static Entry entry(Path path, String name, Object value) throws CheckpointFormatException {
        if (!(value instanceof Map<?, ?> info)) {
            throw fail(path, "entry \"" + name + "\" is not an object");
        }
        if (!(info.get("dtype") instanceof String dt)) {
            throw fail(path, "entry \"" + name + "\" has no dtype");
        }
        StoredType type;
        try {
            type = StoredType.valueOf(dt);
        } catch (IllegalArgumentException e) {
            throw fail(path, "entry \"" + name + "\" has unknown dtype \"" + dt + "\" (known: "
                    + Arrays.toString(StoredType.values()) + ")");
        }
        if (!(info.get("shape") instanceof List<?> shapeList)) {
            throw fail(path, "entry \"" + name + "\" has no shape list");
        }
        long[] shape = new long[shapeList.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            if (!(shapeList.get(i) instanceof Long d) || d < 0) {
                throw fail(path, "entry \"" + name + "\" has an invalid dimension " + shapeList.get(i) + " in its shape "
                        + shapeList);
            }
            shape[i] = d;
            try {
                numel = Math.multiplyExact(numel, d);
            } catch (ArithmeticException ex) {
                throw fail(path, "entry \"" + name + "\": the element count of shape " + shapeList + " overflows");
            }
        }
        if (!(info.get("data_offsets") instanceof List<?> off) || off.size() != 2
                || !(off.get(0) instanceof Long begin) || !(off.get(1) instanceof Long end) || begin < 0) {
            throw fail(path, "entry \"" + name + "\" needs data_offsets [begin, end] of non-negative integers, got "
                    + info.get("data_offsets"));
        }
        if (end < begin) {
            throw fail(path, "entry \"" + name + "\" has data_offsets end " + end + " < begin " + begin);
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(numel, type.byteSize());
        } catch (ArithmeticException ex) {
            throw fail(path, "entry \"" + name + "\": the byte size of shape " + shapeList + " overflows");
        }
        if (end - begin != bytes) {
            throw fail(path, "entry \"" + name + "\" is " + type + " " + shapeList + " which needs " + bytes
                    + " bytes, its data_offsets give " + (end - begin));
        }
        return new Entry(name, type, shape, begin, end);
    }

    public Path path() {
        return path;
    }

    @Override
    public String source() {
        return path.toString();
    }

    @Override
    public Map<String, StoredTensor> tensors() {
        return tensors;
    }

    /** The tensors in header order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    /** The {@code __metadata__} strings (empty if absent). */
    @Override
    public Map<String, String> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The stored bytes of a tensor (a view of the mapping, valid until {@link #close()}). */
    public MemorySegment bytes(String name) {
        return tensor(name).bytes();
    }

    @Override
    public void close() {
        arena.close();
    }
}
