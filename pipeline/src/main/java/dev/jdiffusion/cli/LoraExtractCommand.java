package dev.jdiffusion.cli;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.lora.LoraExtract;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code jdiffusion lora-extract BASE TUNED OUT --rank R}: a LoRA from the difference of two checkpoints. */
@Command(name = "lora-extract", mixinStandardHelpOptions = true,
        description = {"Make a LoRA from a fine-tuned checkpoint and its base: each changed linear and convolution",
            "layer's difference cut to rank R by a truncated SVD (kohya naming, alpha = R). Prints the share of the",
            "difference the LoRA carries, overall and for the layers that keep the least."})
final class LoraExtractCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "BASE", description = "The base checkpoint (.safetensors, .ckpt or diffusers folder).")
    Path base;

    @Parameters(index = "1", paramLabel = "TUNED", description = "The fine-tuned checkpoint of the same architecture.")
    Path tuned;

    @Parameters(index = "2", paramLabel = "OUT", description = "The LoRA file to write (.safetensors).")
    Path out;

    @Option(names = "--rank", defaultValue = "32", description = "Rank of every layer's factors (default ${DEFAULT-VALUE}).")
    int rank;

    @Option(names = "--min-diff", defaultValue = "1e-6",
            description = "Leave out layers whose largest change is at most this (default ${DEFAULT-VALUE}).")
    double minDiff;

    @Option(names = "--dtype", defaultValue = "fp16", description = "fp16 (default) or fp32 factors.")
    String dtype;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the randomized SVD's sketch.")
    long seed;

    @Option(names = "--force", description = "Replace an existing OUT file.")
    boolean force;

    @Override
    public Integer call() throws Exception {
        DType type = switch (ConvertCommand.floatType(dtype)) {
            case F16 -> DType.F16;
            case F32 -> DType.F32;
            default -> throw new IllegalArgumentException("--dtype must be fp16 or fp32, not \"" + dtype + "\"");
        };
        if (Files.exists(out) && !(force && Files.isRegularFile(out))) {
            throw new IllegalArgumentException(out + " already exists" + (Files.isRegularFile(out) ? " (use --force to replace it)" : ""));
        }
        LoraExtract.Result r;
        try (Checkpoint b = Checkpoints.open(base); Checkpoint t = Checkpoints.open(tuned)) {
            r = LoraExtract.extract(tensors(b), tensors(t), rank, minDiff, seed);
        }
        if (r.layers().isEmpty()) {
            throw new IllegalArgumentException(tuned + " differs from " + base + " in no layer by more than " + minDiff);
        }
        Map<String, Tensor> stored = new LinkedHashMap<>();
        r.tensors().forEach((k, v) -> stored.put(k, type == DType.F32 || k.endsWith(".alpha") ? v
                : Tensor.ofHalf(v.toFloatArray(), DType.F16, v.shape())));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("ss_network_module", "networks.lora");
        meta.put("ss_network_dim", Integer.toString(rank));
        meta.put("ss_network_alpha", Integer.toString(rank));
        meta.put("jdiffusion_extracted_from", base.getFileName() + " -> " + tuned.getFileName());
        SafetensorsWriter.write(out, stored, meta);
        System.out.printf(Locale.ROOT, "%s: %d layers at rank %d carry %.2f %% of the difference%n", out, r.layers().size(),
                rank, 100 * r.captured());
        r.layers().stream().sorted(Comparator.comparingDouble(LoraExtract.Layer::captured)).limit(5)
                .forEach(l -> System.out.printf(Locale.ROOT, "  %6.2f %%  %s%n", 100 * l.captured(), l.name()));
        return 0;
    }

    private static Map<String, Tensor> tensors(Checkpoint c) {
        Map<String, Tensor> m = new HashMap<>();
        c.tensors().forEach((k, v) -> m.put(k, v.toTensor()));
        return m;
    }
}
