package dev.jdiffusion.cli;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.StoredType;
import dev.jdiffusion.checkpoint.detect.ModelDetector;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** What a checkpoint is: model family, prediction type, parts, tensor count and size by dtype, keys by prefix. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Describe a checkpoint (.safetensors, .ckpt, diffusers folder): family, prediction, parts, dtypes, size, keys.")
final class InfoCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CHECKPOINT", description = "The file or diffusers folder.")
    Path checkpoint;

    @Option(names = "--keys", description = "List every tensor with its dtype and shape.")
    boolean keys;

    @Override
    public Integer call() throws Exception {
        try (Checkpoint c = Checkpoints.open(checkpoint)) {
            System.out.println("checkpoint   " + checkpoint);
            try {
                ModelDetector.ModelInfo info = ModelDetector.detect(c);
                System.out.println("family       " + info.family() + (info.inpainting() ? " (inpainting)" : ""));
                System.out.println("prediction   " + info.prediction() + " (" + info.predictionSource() + ")");
                System.out.println("parts        " + info.components());
            } catch (CheckpointFormatException e) {
                System.out.println("family       not a model jdiffusion knows: " + e.getMessage().lines().findFirst().orElse(""));
            }
            Map<StoredType, long[]> byType = new TreeMap<>();
            Map<String, Integer> byPrefix = new TreeMap<>();
            long params = 0;
            for (Map.Entry<String, StoredTensor> e : c.tensors().entrySet()) {
                StoredTensor t = e.getValue();
                long[] acc = byType.computeIfAbsent(t.type(), k -> new long[2]);
                acc[0]++;
                acc[1] += t.numel() * t.type().byteSize();
                params += t.numel();
                String key = e.getKey();
                int cut = key.indexOf('.', key.indexOf('.') + 1);
                byPrefix.merge(cut < 0 ? key : key.substring(0, cut + 1), 1, Integer::sum);
            }
            System.out.printf("tensors      %d, %,d values%n", c.tensors().size(), params);
            byType.forEach((t, a) -> System.out.printf("  %-10s %6d tensors %10.1f MB%n", t, a[0], a[1] / 1e6));
            System.out.println("keys by prefix");
            byPrefix.forEach((p, n) -> System.out.printf("  %-50s %6d%n", p, n));
            if (keys) {
                c.tensors().forEach((k, t) -> System.out.println("  " + k + " " + t.type() + " "
                        + java.util.Arrays.toString(t.shape())));
            }
        }
        return 0;
    }
}
