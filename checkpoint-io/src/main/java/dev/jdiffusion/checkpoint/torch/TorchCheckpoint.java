package dev.jdiffusion.checkpoint.torch;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.pickle.Pickle;
import dev.jdiffusion.checkpoint.pickle.SafeUnpickler;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PyTorch checkpoint ({@code .ckpt}, {@code .pt}, {@code .bin}) read without executing anything:
 * the zip layout of torch ≥ 1.6 ({@code <name>/data.pkl} plus one record per storage) and the
 * legacy layout before it (five pickles followed by the raw storages). The pickle is read by
 * {@link SafeUnpickler}: tensors are rebuilt from {@code torch._utils._rebuild_tensor_v2} and its
 * relatives, {@code OrderedDict}s become ordered maps, every other global becomes an inert
 * placeholder, and globals that only serve to run code are refused.
 *
 * <p>The file is memory-mapped; a tensor's bytes are read when they are used.
 */
public final class TorchCheckpoint implements Checkpoint {
    private static final Logger LOG = LoggerFactory.getLogger(TorchCheckpoint.class);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** The first pickle of a legacy file. */
    static final BigInteger LEGACY_MAGIC = new BigInteger("1950a86a20f9469cfc6c", 16);
    static final long LEGACY_PROTOCOL = 1001;

    private final String source;
    private final Arena arena;
    private final Object root;
    private final Map<String, StoredTensor> stateDict;
    private final Map<String, String> metadata;

    private TorchCheckpoint(String source, Arena arena, Object root) throws CheckpointFormatException {
        this.source = source;
        this.arena = arena;
        this.root = root;
        this.stateDict = Collections.unmodifiableMap(findStateDict(root));
        Map<String, String> md = new LinkedHashMap<>();
        if (root instanceof Map<?, ?> m) {
            m.forEach((k, v) -> {
                if (k instanceof String key && (v instanceof String || v instanceof Number || v instanceof Boolean)) {
                    md.put(key, String.valueOf(v));
                }
            });
        }
        this.metadata = Collections.unmodifiableMap(md);
    }

    /** Opens a torch checkpoint file of either layout. */
    public static TorchCheckpoint open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment data = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            TorchCheckpoint c = read(data, path.toString(), arena);
            return c;
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Reads a torch checkpoint held in {@code data}; {@code source} names it in messages. The
     * result's tensors are views of {@code data}, which must stay alive while they are used.
     */
    public static TorchCheckpoint read(MemorySegment data, String source) throws CheckpointFormatException {
        return read(data, source, null);
    }

    private static TorchCheckpoint read(MemorySegment data, String source, Arena arena) throws CheckpointFormatException {
        try {
            if (ZipArchive.looksLikeZip(data)) {
                return new TorchCheckpoint(source, arena, readZip(data, source));
            }
            if (data.byteSize() >= 2 && (data.get(ValueLayout.JAVA_BYTE, 0) & 0xff) == 0x80) {
                return new TorchCheckpoint(source, arena, readLegacy(data, source));
            }
        } catch (ArithmeticException e) {
            throw new CheckpointFormatException(source + ": sizes in the file overflow: " + e.getMessage());
        }
        if (data.byteSize() > 262 && new String(data.asSlice(257, 5).toArray(ValueLayout.JAVA_BYTE),
                java.nio.charset.StandardCharsets.ISO_8859_1).equals("ustar")) {
            throw new CheckpointFormatException(source + ": a tar-based torch file (torch before 0.4); "
                    + "re-save it with a current torch version");
        }
        throw new CheckpointFormatException(source + ": neither a zip archive nor a legacy torch file "
                + "(it does not begin with a zip header or a pickle)");
    }

    // ---------------------------------------------------------------- zip layout

    private static Object readZip(MemorySegment data, String source) throws CheckpointFormatException {
        ZipArchive zip = ZipArchive.read(data, source);
        String pkl = null;
        for (String name : zip.entries().keySet()) {
            int slash = name.indexOf('/');
            if (slash > 0 && name.indexOf('/', slash + 1) < 0 && name.endsWith("/data.pkl")) {
                if (pkl == null) {
                    pkl = name;
                } else {
                    throw new CheckpointFormatException(source + ": two pickles (" + pkl + ", " + name
                            + ") in one archive");
                }
            }
        }
        if (pkl == null) {
            List<String> some = zip.entries().keySet().stream().limit(8).toList();
            throw new CheckpointFormatException(source + ": a zip archive without a <name>/data.pkl record, so not a "
                    + "torch checkpoint (records: " + some + (zip.entries().size() > 8 ? ", …" : "") + ")");
        }
        String prefix = pkl.substring(0, pkl.length() - "data.pkl".length());
        MemorySegment pickle = zip.read(pkl, true);
        Storages storages = new Storages(source, (key, type, numel) -> {
            String record = prefix + "data/" + key;
            MemorySegment rec = zip.read(record, false);
            long need = Math.multiplyExact(numel, type.byteSize());
            if (rec.byteSize() < need) {
                throw new CheckpointFormatException(source + ": record \"" + record + "\" has " + rec.byteSize()
                        + " bytes, its storage of " + numel + " " + type + " elements needs " + need);
            }
            return rec.asSlice(0, need);
        });
        Object root = SafeUnpickler.load(pickle, 0, source + "!" + pkl, storages).value();
        storages.validateTensors();
        return root;
    }

    // ---------------------------------------------------------------- legacy layout

    private static Object readLegacy(MemorySegment data, String source) throws CheckpointFormatException {
        Storages none = new Storages(source, null);
        SafeUnpickler.Result magic = SafeUnpickler.load(data, 0, source, none);
        if (!LEGACY_MAGIC.equals(asBig(magic.value()))) {
            throw new CheckpointFormatException(source + ": begins with a pickle but not with torch's magic number "
                    + "(not a legacy torch checkpoint)");
        }
        SafeUnpickler.Result protocol = SafeUnpickler.load(data, magic.end(), source, none);
        if (!(protocol.value() instanceof Long p) || p != LEGACY_PROTOCOL) {
            throw new CheckpointFormatException(source + ": legacy protocol version " + Pickle.describe(protocol.value())
                    + " is not supported (expected " + LEGACY_PROTOCOL + ")");
        }
        SafeUnpickler.Result sysInfo = SafeUnpickler.load(data, protocol.end(), source, none);
        if (sysInfo.value() instanceof Map<?, ?> info && Boolean.FALSE.equals(info.get("little_endian"))) {
            throw new CheckpointFormatException(source + ": written on a big-endian machine; not supported");
        }
        List<TorchStorage> declared = new ArrayList<>();
        Storages storages = new Storages(source, (key, type, numel) -> null);
        storages.legacy = declared;
        SafeUnpickler.Result object = SafeUnpickler.load(data, sysInfo.end(), source, storages);
        SafeUnpickler.Result keys = SafeUnpickler.load(data, object.end(), source, none);
        if (!(keys.value() instanceof List<?> keyList)) {
            throw new CheckpointFormatException(source + ": the storage key list of the legacy layout is missing");
        }
        long at = keys.end();
        long size = data.byteSize();
        for (Object k : keyList) {
            String key = String.valueOf(k);
            TorchStorage s = storages.byKey.get(key);
            if (s == null) {
                throw new CheckpointFormatException(source + ": storage \"" + key
                        + "\" is listed but no tensor declares its type");
            }
            if (at + 8 > size) {
                throw new CheckpointFormatException(source + ": truncated: storage \"" + key
                        + "\" should begin at byte " + at + " of " + size);
            }
            long count = data.get(U64, at);
            if (count != s.numel()) {
                throw new CheckpointFormatException(source + ": storage \"" + key + "\" holds " + count
                        + " elements, its tensors declared " + s.numel());
            }
            long bytes = Math.multiplyExact(count, s.type().byteSize());
            if (bytes > size - at - 8) {
                throw new CheckpointFormatException(source + ": truncated: storage \"" + key + "\" needs " + bytes
                        + " bytes at byte " + (at + 8) + ", the file has " + size);
            }
            s.resolve(data.asSlice(at + 8, bytes));
            at += 8 + bytes;
        }
        for (TorchStorage s : declared) {
            if (!s.isResolved()) {
                throw new CheckpointFormatException(source + ": storage \"" + s.key()
                        + "\" is used by a tensor but missing from the key list");
            }
        }
        storages.validateTensors();
        return object.value();
    }

    private static BigInteger asBig(Object v) {
        if (v instanceof BigInteger b) {
            return b;
        }
        return v instanceof Long l ? BigInteger.valueOf(l) : null;
    }

    // ---------------------------------------------------------------- the unpickling policy

    @FunctionalInterface
    private interface Records {
        MemorySegment bytes(String key, StoredType type, long numel) throws CheckpointFormatException;
    }

    /** Builds storages from persistent ids and tensors from the rebuild functions; nothing else is called. */
    private static final class Storages implements SafeUnpickler.Calls {
        private final String source;
        private final Records records;
        private final Map<String, TorchStorage> byKey = new HashMap<>();
        private final List<TorchTensor> tensors = new ArrayList<>();
        private List<TorchStorage> legacy;

        Storages(String source, Records records) {
            this.source = source;
            this.records = records;
        }

        void validateTensors() throws CheckpointFormatException {
            for (TorchTensor t : tensors) {
                t.validate(source);
            }
        }

        @Override
        public Object persistentLoad(Object pid) throws CheckpointFormatException {
            if (records == null) {
                throw new CheckpointFormatException(source + ": a storage reference where none may appear");
            }
            if (!(pid instanceof Pickle.Tuple(List<Object> items)) || items.size() < 5
                    || !"storage".equals(items.get(0))) {
                throw new CheckpointFormatException(source + ": unknown persistent id (" + Pickle.describe(pid) + ")");
            }
            if (!(items.get(1) instanceof Pickle.Global g)) {
                throw new CheckpointFormatException(source + ": storage type (" + Pickle.describe(items.get(1))
                        + ") is not a class name");
            }
            StoredType type = (g.module().equals("torch") || g.module().equals("torch.cuda"))
                    ? TorchStorage.TYPES.get(g.name()) : null;
            if (type == null) {
                throw new CheckpointFormatException(source + ": unknown storage type '" + g + "' (known: torch."
                        + String.join(", torch.", new java.util.TreeSet<>(TorchStorage.TYPES.keySet())) + ")");
            }
            if (!(items.get(2) instanceof String) && !(items.get(2) instanceof Long)) {
                throw new CheckpointFormatException(source + ": storage key (" + Pickle.describe(items.get(2))
                        + ") is not a name");
            }
            String key = String.valueOf(items.get(2));
            if (!(items.get(4) instanceof Long numel) || numel < 0) {
                throw new CheckpointFormatException(source + ": storage \"" + key + "\" has an invalid size ("
                        + Pickle.describe(items.get(4)) + ")");
            }
            if (items.size() > 5 && items.get(5) != null) {
                throw new CheckpointFormatException(source + ": storage \"" + key
                        + "\" is a legacy storage view, which is not supported");
            }
            TorchStorage s = byKey.get(key);
            if (s != null) {
                if (s.type() != type || s.numel() != numel) {
                    throw new CheckpointFormatException(source + ": storage \"" + key + "\" is declared both as "
                            + s.numel() + " " + s.type() + " and as " + numel + " " + type);
                }
                return s;
            }
            s = new TorchStorage(type, key, numel);
            MemorySegment b = records.bytes(key, type, numel);
            if (b != null) {
                s.resolve(b);
            } else if (legacy != null) {
                legacy.add(s);
            }
            byKey.put(key, s);
            return s;
        }

        @Override
        public Object call(Pickle.Global callee, Pickle.Tuple args) throws CheckpointFormatException {
            String m = callee.module();
            String n = callee.name();
            List<Object> a = args.items();
            if (m.equals("torch._utils")) {
                switch (n) {
                    case "_rebuild_tensor_v2", "_rebuild_tensor" -> {
                        return rebuild(a);
                    }
                    case "_rebuild_parameter", "_rebuild_parameter_with_state" -> {
                        if (a.isEmpty() || !(a.get(0) instanceof TorchTensor t)) {
                            throw new CheckpointFormatException(source + ": " + callee + " without a tensor");
                        }
                        return t;
                    }
                    default -> {
                        if (n.startsWith("_rebuild")) {
                            throw new CheckpointFormatException(source + ": unsupported tensor kind " + callee
                                    + " (only dense CPU-layout tensors are read)");
                        }
                    }
                }
            }
            if (m.equals("torch._tensor") && n.equals("_rebuild_from_type_v2") && a.size() >= 3
                    && a.get(0) instanceof Pickle.Global inner && a.get(2) instanceof Pickle.Tuple innerArgs) {
                return call(inner, innerArgs);
            }
            if (m.equals("collections") && n.equals("OrderedDict")) {
                Map<Object, Object> map = new LinkedHashMap<>();
                if (!a.isEmpty() && a.get(0) instanceof List<?> pairs) {
                    for (Object p : pairs) {
                        if (p instanceof Pickle.Tuple(List<Object> kv) && kv.size() == 2) {
                            map.put(kv.get(0), kv.get(1));
                        }
                    }
                }
                return map;
            }
            if (m.equals("torch") && n.equals("Size") && a.size() == 1) {
                return a.get(0);
            }
            return Pickle.Opaque.of(callee, args);
        }

        private TorchTensor rebuild(List<Object> a) throws CheckpointFormatException {
            if (a.size() < 4 || !(a.get(0) instanceof TorchStorage s) || !(a.get(1) instanceof Long offset)) {
                throw new CheckpointFormatException(source + ": malformed _rebuild_tensor arguments (" + a.size()
                        + " values, the first " + (a.isEmpty() ? "missing" : Pickle.describe(a.get(0))) + ")");
            }
            long[] size = longs(a.get(2), "size");
            long[] stride = longs(a.get(3), "stride");
            if (size.length != stride.length) {
                throw new CheckpointFormatException(source + ": tensor size and stride differ in rank ("
                        + size.length + " and " + stride.length + ")");
            }
            for (long d : size) {
                if (d < 0) {
                    throw new CheckpointFormatException(source + ": negative tensor dimension " + d);
                }
            }
            TorchTensor t = new TorchTensor(s, offset, size, stride);
            tensors.add(t);
            return t;
        }

        private long[] longs(Object o, String what) throws CheckpointFormatException {
            if (!(o instanceof Pickle.Tuple(List<Object> items))) {
                throw new CheckpointFormatException(source + ": tensor " + what + " (" + Pickle.describe(o) + ") is not a tuple");
            }
            long[] r = new long[items.size()];
            for (int i = 0; i < r.length; i++) {
                if (!(items.get(i) instanceof Long l)) {
                    throw new CheckpointFormatException(source + ": tensor " + what + " holds a non-integer ("
                            + Pickle.describe(items.get(i)) + ")");
                }
                r[i] = l;
            }
            return r;
        }
    }

    // ---------------------------------------------------------------- results

    private Map<String, StoredTensor> findStateDict(Object root) throws CheckpointFormatException {
        Object sd = root;
        if (root instanceof Map<?, ?> m && m.get("state_dict") instanceof Map<?, ?> inner) {
            sd = inner;
        }
        if (!(sd instanceof Map<?, ?> map)) {
            throw new CheckpointFormatException(source + ": holds a " + describe(root) + ", not a state dict");
        }
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : map.entrySet()) {
            if (e.getKey() instanceof String k && e.getValue() instanceof TorchTensor t) {
                out.put(k, t);
            } else if (e.getValue() instanceof Pickle.Opaque o) {
                LOG.warn("{}: entry {} is an inert {} placeholder, not a tensor; ignored", source, e.getKey(), o.callee());
            }
        }
        return out;
    }

    private static String describe(Object o) {
        return o == null ? "None" : o instanceof Pickle.Opaque op ? op.toString() : o.getClass().getSimpleName();
    }

    @Override
    public String source() {
        return source;
    }

    /**
     * The whole unpickled object: maps, lists, {@link Pickle.Tuple}s, numbers ({@code Long},
     * {@code BigInteger}, {@code Double}), strings, booleans, null, {@link TorchTensor}s and inert
     * {@link Pickle.Opaque} / {@link Pickle.Global} values.
     */
    public Object root() {
        return root;
    }

    /** The state dict: {@code root["state_dict"]} when present, else the root map; tensors only, in file order. */
    @Override
    public Map<String, StoredTensor> tensors() {
        return stateDict;
    }

    /** The top-level scalar values (for example {@code global_step}) as strings. */
    @Override
    public Map<String, String> metadata() {
        return metadata;
    }

    @Override
    public void close() {
        if (arena != null) {
            arena.close();
        }
    }
}
