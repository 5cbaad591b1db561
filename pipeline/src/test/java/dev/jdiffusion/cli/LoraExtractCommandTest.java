package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsWriter;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.lora.LoraFile;
import dev.jdiffusion.lora.LoraMerge;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A fine-tune made by merging the lora/sd1-tiny LoRA into its base comes back out as a LoRA of the same effect. */
class LoraExtractCommandTest {
    @Test
    void extractsWhatWasMergedIn(@TempDir Path dir) throws Exception {
        Path root = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("lora/sd1-tiny")), "no conformance data at " + root);
        Path base = root.resolve("unet/sd1-tiny/model.safetensors");
        Map<String, Tensor> w = new HashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(base)) {
            f.tensors().forEach((k, v) -> w.put(k, Tensor.of(v.toTensor().toFloatArray(), v.toTensor().shape())));
        }
        LoraFile a = LoraFile.read(root.resolve("lora/sd1-tiny/lora-kohya.safetensors"));
        Path tuned = dir.resolve("tuned.safetensors");
        SafetensorsWriter.write(tuned, LoraMerge.merge(w, List.of(LoraMerge.Applied.of(a, 1))).weights(), Map.of());
        Path out = dir.resolve("extracted.safetensors");
        java.io.PrintStream old = System.out;
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8));
            code = Main.commandLine().execute("lora-extract", base.toString(), tuned.toString(), out.toString(), "--rank", "8",
                    "--dtype", "fp32");
        } finally {
            System.setOut(old);
        }
        String printed = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, code, printed);
        assertTrue(printed.contains("81 layers at rank 8 carry 100.00 % of the difference"), printed);
        LoraFile back = LoraFile.read(out);
        Map<String, Tensor> again = LoraMerge.merge(w, List.of(LoraMerge.Applied.of(back, 1))).weights();
        Map<String, Tensor> want = LoraMerge.merge(w, List.of(LoraMerge.Applied.of(a, 1))).weights();
        for (String k : want.keySet()) {
            float[] x = want.get(k).toFloatArray();
            float[] y = again.get(k).toFloatArray();
            for (int i = 0; i < x.length; i++) {
                assertEquals(x[i], y[i], 1e-5, k);
            }
        }
        StringWriter err = new StringWriter();
        assertTrue(Main.commandLine().setErr(new PrintWriter(err)).execute("lora-extract", base.toString(), tuned.toString(),
                out.toString()) != 0);
        assertTrue(err.toString().contains("already exists"), err.toString());
    }
}
