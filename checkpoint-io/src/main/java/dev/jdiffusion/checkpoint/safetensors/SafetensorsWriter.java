package dev.jdiffusion.checkpoint.safetensors;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes {@code .safetensors} files. The file is written under a temporary name in the target's
 * folder, flushed to disk and then renamed, so a crash or an error never leaves a half-written
 * file under the real name.
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {
    }

    /** Writes the tensors (in map order, each in its own dtype) and the metadata strings to {@code target}. */
    public static void write(Path target, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Map<String, StoredTensor> stored = new LinkedHashMap<>();
        tensors.forEach((k, v) -> stored.put(k, StoredTensor.of(v)));
        writeStored(target, stored, metadata);
    }

    /**
     * Writes stored tensors of any type (in map order) and the metadata strings to {@code target}.
     * Each tensor's bytes are asked for once, when its turn comes, so a converter can stream a
     * checkpoint larger than memory.
     */
    public static void writeStored(Path target, Map<String, ? extends StoredTensor> tensors, Map<String, String> metadata)
            throws IOException {
        StringBuilder h = new StringBuilder("{");
        boolean first = true;
        if (metadata != null && !metadata.isEmpty()) {
            h.append("\"__metadata__\":{");
            boolean f2 = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                h.append(f2 ? "" : ",").append(quote(m.getKey())).append(':').append(quote(m.getValue()));
                f2 = false;
            }
            h.append('}');
            first = false;
        }
        long offset = 0;
        for (Map.Entry<String, ? extends StoredTensor> e : tensors.entrySet()) {
            if (e.getKey().equals("__metadata__")) {
                throw new IllegalArgumentException("a tensor may not be named __metadata__");
            }
            StoredTensor t = e.getValue();
            long bytes = t.numel() * t.type().byteSize();
            h.append(first ? "" : ",").append(quote(e.getKey())).append(":{\"dtype\":\"")
                    .append(t.type()).append("\",\"shape\":[");
            long[] shape = t.shape();
            for (int i = 0; i < shape.length; i++) {
                h.append(i == 0 ? "" : ",").append(shape[i]);
            }
            h.append("],\"data_offsets\":[").append(offset).append(',').append(offset + bytes).append("]}");
            offset += bytes;
            first = false;
        }
        h.append('}');
        byte[] header = h.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) / 8 * 8;
        Path dir = target.toAbsolutePath().getParent();
        // a hidden sibling, created with the process's usual permissions (not a temp file's owner-only ones)
        Path tmp = Files.createFile(dir.resolve("." + target.getFileName() + "." + Long.toHexString(System.nanoTime())
                + ".tmp"));
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE);
                 OutputStream out = new BufferedOutputStream(Channels.newOutputStream(ch), 1 << 20)) {
                ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
                out.write(len.array());
                out.write(header);
                for (int i = header.length; i < padded; i++) {
                    out.write(' ');
                }
                byte[] chunk = new byte[1 << 16];
                for (Map.Entry<String, ? extends StoredTensor> e : tensors.entrySet()) {
                    StoredTensor t = e.getValue();
                    MemorySegment src = t.bytes();
                    long want = t.numel() * t.type().byteSize();
                    if (src.byteSize() != want) {
                        throw new IllegalStateException("tensor \"" + e.getKey() + "\" produced " + src.byteSize()
                                + " bytes, its shape needs " + want);
                    }
                    for (long at = 0; at < want; at += chunk.length) {
                        int n = (int) Math.min(chunk.length, want - at);
                        MemorySegment.copy(src, ValueLayout.JAVA_BYTE, at, chunk, 0, n);
                        out.write(chunk, 0, n);
                    }
                }
                out.flush();
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            done = true;
        } finally {
            if (!done) {
                Files.deleteIfExists(tmp);
            }
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
