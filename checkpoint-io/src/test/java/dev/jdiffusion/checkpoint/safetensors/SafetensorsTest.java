package dev.jdiffusion.checkpoint.safetensors;

import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.checkpoint.StoredType;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void writeThenReadIsBitIdenticalForEveryTensorType() throws IOException {
        Random rnd = new Random(7);
        float[] v = new float[3 * 5 * 7];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        v[0] = Float.NaN;
        v[1] = Float.NEGATIVE_INFINITY;
        v[2] = -0f;
        v[3] = Float.MIN_VALUE;
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        tensors.put("model.f32", Tensor.of(v.clone(), 3, 5, 7));
        tensors.put("model.f16", Tensor.ofHalf(v, DType.F16, 7, 15));
        tensors.put("model.bf16", Tensor.ofHalf(v, DType.BF16, 105));
        tensors.put("scalar", Tensor.of(new float[] {2.5f}));
        tensors.put("empty", Tensor.zeros(0, 3));
        tensors.put("ünïcode \"key\"", Tensor.of(new float[] {1f, 2f}, 2));
        Path file = dir.resolve("model.safetensors");
        SafetensorsWriter.write(file, tensors, Map.of("format", "pt", "note", "round trip ✓"));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(1, left.count(), "no temporary file left behind");
        }
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(tensors.keySet().stream().toList(), f.entries().keySet().stream().toList());
            assertEquals("round trip ✓", f.metadata().get("note"));
            for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
                Tensor got = f.tensor(e.getKey()).toTensor();
                assertEquals(e.getValue().dtype(), got.dtype(), e.getKey());
                assertArrayEquals(e.getValue().shape(), got.shape(), e.getKey());
                float[] want = e.getValue().toFloatArray();
                float[] have = got.toFloatArray();
                for (int i = 0; i < want.length; i++) {
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(have[i]), e.getKey() + "[" + i + "]");
                }
            }
            // a mapped F16 tensor is written back byte for byte
            Path copy = dir.resolve("copy.safetensors");
            SafetensorsWriter.write(copy, Map.of("w", f.tensor("model.f16").toTensor()), Map.of());
            try (SafetensorsFile g = SafetensorsFile.open(copy)) {
                assertEquals(f.bytes("model.f16").asByteBuffer(), g.bytes("w").asByteBuffer());
            }
        }
    }

    @Test
    void float8DecodingFollowsTorch() {
        assertEquals(448.0, StoredType.e4m3(0x7e));
        assertTrue(Double.isNaN(StoredType.e4m3(0x7f)));
        assertEquals(-Math.scalb(1.0, -9), StoredType.e4m3(0x81));
        assertEquals(57344.0, StoredType.e5m2(0x7b));
        assertEquals(Double.NEGATIVE_INFINITY, StoredType.e5m2(0xfc));
        assertTrue(Double.isNaN(StoredType.e5m2(0x7d)));
        assertEquals(Math.scalb(1.0, -16), StoredType.e5m2(0x01));
    }

    private Path raw(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path p = Files.createTempFile(dir, "bad", ".safetensors");
        Files.write(p, b.array());
        return p;
    }

    private void assertRejected(Path p, String fragment) {
        CheckpointFormatException e = assertThrows(CheckpointFormatException.class, () -> SafetensorsFile.open(p).close());
        assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), "expected \"" + fragment + "\" in: " + e.getMessage());
    }

    @Test
    void brokenFilesGetClearErrors() throws IOException {
        String a = "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}";
        assertRejected(raw("{" + a + "}", 8), "truncated");
        assertRejected(raw("{" + a + "}", 32), "16 bytes after the last tensor");
        assertRejected(raw("{" + a + ",\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24), "overlap");
        assertRejected(raw("{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 32), "belong to no tensor");
        assertRejected(raw("{\"a\":{\"dtype\":\"F12\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16), "F12");
        assertRejected(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,60]}}", 60), "needs 64 bytes");
        assertRejected(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16), "invalid dimension");
        assertRejected(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", 16),
                "overflows");
        assertRejected(raw("{" + a + "," + a + "}", 16), "duplicate key");
        assertRejected(raw("{\"a\": [1, 2", 0), "not valid JSON");
        assertRejected(raw("[1, 2]", 0), "JSON object");
        assertRejected(raw("{\"__metadata__\":{\"k\":1}}", 0), "not a string");
        Path p = Files.createTempFile(dir, "short", ".safetensors");
        Files.write(p, new byte[5]);
        assertRejected(p, "fewer than the 8-byte");
        ByteBuffer huge = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 62).putLong(0);
        Path q = Files.createTempFile(dir, "huge", ".safetensors");
        Files.write(q, huge.array());
        assertRejected(q, "exceeds the limit");
        ByteBuffer bigger = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).putLong(0);
        Path r = Files.createTempFile(dir, "long", ".safetensors");
        Files.write(r, bigger.array());
        assertRejected(r, "larger than the file");
        byte[] bad = {(byte) '{', (byte) '"', (byte) 0xff, (byte) '"', (byte) ':', (byte) '1', (byte) '}', (byte) ' '};
        ByteBuffer nu = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(8).put(bad);
        Path u = Files.createTempFile(dir, "utf", ".safetensors");
        Files.write(u, nu.array());
        assertRejected(u, "UTF-8");
    }

    @Test
    void aFailedWriteLeavesNothingBehind() throws IOException {
        Path target = dir.resolve("out.safetensors");
        Map<String, Tensor> bad = new LinkedHashMap<>();
        bad.put("__metadata__", Tensor.zeros(1));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(target, bad, Map.of()));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(0, left.count());
        }
    }

    @Test
    void writtenFilesGetTheUsualPermissionsNotATempFilesOwnerOnlyOnes() throws IOException {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        Path reference = Files.createFile(dir.resolve("reference"));
        Path target = dir.resolve("w.safetensors");
        SafetensorsWriter.write(target, Map.of("x", Tensor.zeros(2)), Map.of());
        assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(target));
        // a failure in the middle of the data leaves neither the target nor a temporary file
        Map<String, dev.jdiffusion.checkpoint.StoredTensor> failing = new LinkedHashMap<>();
        failing.put("ok", dev.jdiffusion.checkpoint.StoredTensor.of(Tensor.zeros(4)));
        failing.put("fails", dev.jdiffusion.checkpoint.StoredTensor.lazy(dev.jdiffusion.checkpoint.StoredType.F32,
                new long[] {4}, () -> {
                    throw new IllegalStateException("disk on fire");
                }));
        Path second = dir.resolve("second.safetensors");
        assertThrows(IllegalStateException.class, () -> SafetensorsWriter.writeStored(second, failing, Map.of()));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(java.util.Set.of("reference", "w.safetensors"),
                    left.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toSet()));
        }
    }
}
