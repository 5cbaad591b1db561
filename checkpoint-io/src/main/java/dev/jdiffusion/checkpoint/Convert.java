package dev.jdiffusion.checkpoint;

import dev.jdiffusion.checkpoint.diffusers.DiffusersWriter;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Converts between checkpoint formats: any readable input ({@code .ckpt}, {@code .safetensors},
 * diffusers folder) to a {@code .safetensors} single file or a diffusers folder, optionally casting
 * floating-point weights to F16, BF16 or F32 (integer buffers such as {@code position_ids} keep
 * their type). Outputs are written atomically: a failure leaves no partial file or folder.
 */
public final class Convert {
    private static final Logger LOG = LoggerFactory.getLogger(Convert.class);

    private Convert() {
    }

    /** What a conversion wrote. */
    public record Result(Path output, int tensors, boolean diffusers) {
    }

    /**
     * Converts {@code in} to {@code out}: a path ending in {@code .safetensors} gets a single file,
     * any other path a new diffusers folder. {@code cast} may be null (keep every type).
     */
    public static Result convert(Path in, Path out, StoredType cast) throws IOException {
        if (cast != null && cast.tensorType() == null) {
            throw new IllegalArgumentException("cast must be F32, F16 or BF16, not " + cast);
        }
        if (in.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("input and output are the same path: " + in);
        }
        boolean single = out.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".safetensors");
        try (Checkpoint c = Checkpoints.open(in)) {
            Map<String, StoredTensor> tensors = new LinkedHashMap<>();
            c.tensors().forEach((k, v) -> tensors.put(k, cast == null ? v : v.castTo(cast)));
            if (single) {
                if (Files.isDirectory(out)) {
                    throw new CheckpointFormatException(out + " is a folder, not a .safetensors file path");
                }
                SafetensorsWriter.writeStored(out, tensors, c.metadata());
            } else {
                DiffusersWriter.write(c, out, cast == null ? null : t -> t.castTo(cast));
            }
            LOG.info("{} -> {}: {} tensors{}", in, out, tensors.size(), cast == null ? "" : " as " + cast);
            return new Result(out, tensors.size(), !single);
        }
    }
}
