package dev.jdiffusion.benchmarks;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Loading a full-size SD 1.5 checkpoint (random weights, {@link Sd15Checkpoint}): opening and
 * listing the 4.3 GB fp32 file; loading every tensor as fp16 from the 2.1 GB fp16 file (views of
 * the mapping, paged in) and from the fp32 one (converted); an fp16 copy of every tensor that
 * outlives the file; and, as the yardstick, {@code cat} of each file to /dev/null. The files are
 * written once to {@code jdiffusion.bench.dir} (default {@code <tmp>/jdiffusion-bench}) and reused;
 * after the first iteration they sit in the page cache, like a model that was just downloaded or
 * loaded before.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 5, time = 3)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx10g"})
public class CheckpointBenchmark {
    static final long SEED = 1505;

    private Path f32;
    private Path f16;

    static Path dir() {
        String d = System.getProperty("jdiffusion.bench.dir");
        return d != null ? Paths.get(d) : Paths.get(System.getProperty("java.io.tmpdir"), "jdiffusion-bench");
    }

    @Setup
    public void files() throws IOException {
        f32 = Sd15Checkpoint.cached(dir(), StoredType.F32, SEED);
        f16 = Sd15Checkpoint.cached(dir(), StoredType.F16, SEED);
    }

    /** Size in bytes of the file a benchmark method reads, for the report's GB/s. */
    static long fileBytes(String method) throws IOException {
        Path p = Sd15Checkpoint.cached(dir(), method.endsWith("F32") ? StoredType.F32 : StoredType.F16, SEED);
        return Files.size(p);
    }

    @Benchmark
    public long openAndListF32() throws IOException {
        long sum = 0;
        try (SafetensorsFile f = SafetensorsFile.open(f32)) {
            for (Map.Entry<String, SafetensorsFile.Entry> e : f.entries().entrySet()) {
                sum += e.getKey().length() + e.getValue().numel() + e.getValue().type().ordinal();
            }
        }
        return sum;
    }

    /** What a model loader does: fp16 views of the mapped fp16 file, paged in. */
    @Benchmark
    public long loadFp16FromF16() throws IOException {
        return load(f16);
    }

    /** What a model loader does with an fp32 file: every tensor converted to fp16 in fresh memory. */
    @Benchmark
    public long loadFp16FromF32() throws IOException {
        return load(f32);
    }

    /** An fp16 copy of every tensor that outlives the file, in an arena (twice the memory of {@link #loadFp16FromF16}). */
    @Benchmark
    public long materialiseFp16FromF16() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(f16); Arena arena = Arena.ofShared()) {
            List<MemorySegment> out = new ArrayList<>(f.tensors().size());
            for (StoredTensor t : f.tensors().values()) {
                out.add(t.materialise(StoredType.F16, arena));
            }
            return checksum(out);
        }
    }

    @Benchmark
    public int catF16() throws IOException, InterruptedException {
        return cat(f16);
    }

    @Benchmark
    public int catF32() throws IOException, InterruptedException {
        return cat(f32);
    }

    private static long load(Path file) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file); Arena arena = Arena.ofShared()) {
            return checksum(new ArrayList<>(f.loadAll(StoredType.F16, arena).values()));
        }
    }

    /** Depends on every tensor's last byte, so no load can be skipped. */
    private static long checksum(List<MemorySegment> segments) {
        long check = 0;
        for (MemorySegment s : segments) {
            check += s.byteSize() + s.get(ValueLayout.JAVA_BYTE, s.byteSize() - 1);
        }
        return check;
    }

    private static int cat(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("cat", file.toString()).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectErrorStream(true).start();
        int rc = p.waitFor();
        if (rc != 0) {
            throw new IOException("cat " + file + " exited with " + rc);
        }
        return rc;
    }
}
