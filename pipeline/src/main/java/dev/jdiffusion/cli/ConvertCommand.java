package dev.jdiffusion.cli;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.Convert;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.detect.ModelDetector;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code jdiffusion convert IN OUT}: between .ckpt, .safetensors and diffusers folders, with an optional cast. */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Convert a checkpoint: .ckpt/.pt/.bin, .safetensors or a diffusers folder in;",
            "a .safetensors file (OUT ends in .safetensors) or a new diffusers folder (any other OUT) out.",
            "Nothing in the input is executed; the output appears only when it is complete."})
final class ConvertCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "IN", description = "Checkpoint file or diffusers folder to read.")
    Path in;

    @Parameters(index = "1", paramLabel = "OUT", description = "A .safetensors path, or a new folder for diffusers output.")
    Path out;

    @Option(names = "--dtype", paramLabel = "TYPE",
            description = "Cast floating-point weights to fp16, bf16 or fp32 (integer buffers keep their type).")
    String dtype;

    @Option(names = "--force", description = "Replace an existing OUT file.")
    boolean force;

    /** A floating-point storage type by the names users write ({@code fp16}, {@code half}, {@code bf16}, {@code fp32}, …). */
    static StoredType floatType(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "fp16", "f16", "float16", "half" -> StoredType.F16;
            case "bf16", "bfloat16" -> StoredType.BF16;
            case "fp32", "f32", "float32", "float" -> StoredType.F32;
            default -> throw new IllegalArgumentException("--dtype must be fp16, bf16 or fp32, not \"" + name + "\"");
        };
    }

    @Override
    public Integer call() throws IOException {
        StoredType cast = dtype == null ? null : floatType(dtype);
        if (Files.exists(out) && !(force && Files.isRegularFile(out))) {
            throw new IllegalArgumentException(out + " already exists" + (Files.isRegularFile(out) ? " (use --force to replace it)" : ""));
        }
        Convert.Result r = Convert.convert(in, out, cast);
        System.out.printf("%s -> %s: %d tensors%s, %s%n", in, out, r.tensors(), cast == null ? "" : " as " + cast,
                r.diffusers() ? "diffusers folder" : "safetensors file");
        try (Checkpoint c = Checkpoints.open(out)) {
            ModelDetector.ModelInfo info = ModelDetector.detect(c);
            System.out.printf("model: %s, %d input channels, %s prediction (%s)%n", info.family(), info.inChannels(),
                    info.prediction(), info.predictionSource());
        } catch (IOException e) {
            // a VAE or a text encoder alone is converted as well; it is just not a full model
            System.out.printf("model: %s%n", e.getMessage());
        }
        return 0;
    }
}
