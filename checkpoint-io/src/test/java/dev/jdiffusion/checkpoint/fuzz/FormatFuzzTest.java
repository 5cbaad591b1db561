package dev.jdiffusion.checkpoint.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.pickle.Pickle;
import dev.jdiffusion.checkpoint.pickle.SafeUnpickler;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.checkpoint.torch.TorchCheckpoint;
import dev.jdiffusion.checkpoint.torch.ZipArchive;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzz targets for every parser that reads untrusted bytes. Any input may be rejected with a
 * {@link CheckpointFormatException}; anything else (another exception, a hang, running out of
 * memory) is a finding. Run as ordinary tests they replay the seed inputs under
 * {@code src/test/resources/.../FormatFuzzTestInputs/}; with {@code JAZZER_FUZZ=1} they fuzz
 * (see the module README for the command).
 */
class FormatFuzzTest {
    private static final Path SCRATCH;

    static {
        try {
            SCRATCH = Files.createTempFile("jdiffusion-fuzz", ".safetensors");
            SCRATCH.toFile().deleteOnExit();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void touchAll(Iterable<StoredTensor> tensors) {
        for (StoredTensor t : tensors) {
            t.bytes();
        }
    }

    @FuzzTest(maxDuration = "20s")
    void safetensorsHeader(byte[] data) throws IOException {
        Files.write(SCRATCH, data);
        try (SafetensorsFile f = SafetensorsFile.open(SCRATCH)) {
            touchAll(f.tensors().values());
        } catch (CheckpointFormatException expected) {
            // rejected with the library's own error
        }
    }

    @FuzzTest(maxDuration = "20s")
    void zipEntries(byte[] data) {
        MemorySegment seg = MemorySegment.ofArray(data);
        try {
            ZipArchive zip = ZipArchive.read(seg, "fuzz");
            for (String name : zip.entries().keySet()) {
                zip.read(name, true);
            }
        } catch (CheckpointFormatException expected) {
            // rejected
        }
        try (TorchCheckpoint c = TorchCheckpoint.read(seg, "fuzz")) {
            touchAll(c.tensors().values());
        } catch (CheckpointFormatException expected) {
            // rejected
        }
    }

    @FuzzTest(maxDuration = "20s")
    void unpickler(byte[] data) {
        SafeUnpickler.Calls inert = new SafeUnpickler.Calls() {
            @Override
            public Object call(Pickle.Global callee, Pickle.Tuple args) {
                return Pickle.Opaque.of(callee, args);
            }

            @Override
            public Object persistentLoad(Object pid) {
                return pid;
            }
        };
        try {
            SafeUnpickler.load(data, 0, "fuzz", inert);
        } catch (CheckpointFormatException expected) {
            // rejected
        }
    }
}
