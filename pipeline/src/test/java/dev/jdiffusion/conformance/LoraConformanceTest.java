package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.lora.LoraFile;
import dev.jdiffusion.lora.LoraMerge;
import dev.jdiffusion.lora.LoraRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case under {@code lora/}: LoRA A merged at 1.0 against the golden merged weights (every
 * other weight untouched), at 0.7 against the checksums, the UNet outputs after merging A at 1.0
 * and 0.7, its F16 copy, its PEFT copy and the stack A·0.7 + B·(−0.5), the same outputs with the
 * adapters applied at run time, unmerge bit-exact, and the unmatched modules reported by name.
 */
class LoraConformanceTest {
    private static final Backend CPU = new CpuBackend(2);

    @AfterAll
    static void close() {
        CPU.close();
    }

    @TestFactory
    Stream<DynamicTest> everyLoraCase() throws IOException {
        return Cases.scan("lora", LoraConformanceTest::run);
    }

    private static void run(String rel, Path dir) throws IOException {
        Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(dir.resolve("manifest.json")));
        Cases.Compare c = new Cases.Compare(CPU, 5e-6, 5e-5);
        if (!"lora-merge".equals(m.get("kind"))) {
            c.fail("no runner for kind " + m.get("kind"));
            assertTrue(c.report(rel), rel + ": " + c.failures);
            return;
        }
        Map<?, ?> baseInfo = (Map<?, ?>) m.get("base_model");
        UNet.Config cfg = UNetConformanceTest.config((Map<?, ?>) baseInfo.get("unet_config"));
        try (SafetensorsFile baseFile = SafetensorsFile.open(dir.resolve((String) baseInfo.get("file")).normalize());
             SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"));
             SafetensorsFile golden = SafetensorsFile.open(dir.resolve("merged-m1.0.safetensors"))) {
            Map<String, Tensor> base = Cases.tensors(baseFile);
            LoraFile a = LoraFile.read(dir.resolve("lora-kohya.safetensors"));
            LoraFile b = LoraFile.read(dir.resolve("lora-kohya-b.safetensors"));
            Tensor x = io.tensor("x").toTensor();
            float[] ts = Cases.floats(io.tensor("timesteps"));
            Tensor context = io.tensor("context").toTensor();
            UNet plain = UNet.load(CPU, base, "model.diffusion_model.", cfg);

            // 1. merged weights at 1.0; everything else the base's own tensors; unmerge gives the base back
            LoraMerge.Merged m10 = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(a, 1.0)));
            Cases.Compare weights = new Cases.Compare(CPU, Double.POSITIVE_INFINITY, 1e-5);
            for (String key : golden.tensors().keySet()) {
                weights.compare("merged " + key, m10.weights().get(key), golden.tensor(key));
            }
            weights.failures.forEach(c::fail);
            if (m10.originals().size() != golden.tensors().size()) {
                c.fail("merging changed " + m10.originals().size() + " weights, the reference " + golden.tensors().size());
            }
            for (Map.Entry<String, Tensor> e : base.entrySet()) {
                if (!golden.tensors().containsKey(e.getKey()) && m10.weights().get(e.getKey()) != e.getValue()) {
                    c.fail(e.getKey() + " changed although no module names it");
                }
            }
            Map<String, Tensor> back = m10.unmerge();
            for (Map.Entry<String, Tensor> e : base.entrySet()) {
                if (!java.util.Arrays.equals(back.get(e.getKey()).toFloatArray(), e.getValue().toFloatArray())) {
                    c.fail("unmerge did not restore " + e.getKey() + " bit for bit");
                }
            }

            // 2. merged weights at 0.7 against the checksums
            LoraMerge.Merged m07 = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(a, 0.7)));
            checksums(c, "m0.7", (Map<?, ?>) ((Map<?, ?>) m.get("merged_weight_checksums")).get("m0.7"), m07.weights());
            LoraMerge.Merged stack = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(a, 0.7), LoraMerge.Applied.of(b, -0.5)));
            checksums(c, "stack", (Map<?, ?>) ((Map<?, ?>) m.get("stack")).get("merged_weight_checksums"), stack.weights());

            // 3. and 4. the UNet after merging, and with the adapters beside the weights
            Map<String, List<LoraMerge.Applied>> runs = new java.util.LinkedHashMap<>();
            runs.put("eps_m1.0", List.of(LoraMerge.Applied.of(a, 1.0)));
            runs.put("eps_m0.7", List.of(LoraMerge.Applied.of(a, 0.7)));
            runs.put("eps_lora_fp16_m1.0", List.of(LoraMerge.Applied.of(LoraFile.read(dir.resolve("lora-kohya-fp16.safetensors")), 1.0)));
            runs.put("eps_stack", List.of(LoraMerge.Applied.of(a, 0.7), LoraMerge.Applied.of(b, -0.5)));
            runs.put("eps_m1.0 (PEFT)", List.of(LoraMerge.Applied.of(LoraFile.read(dir.resolve("lora-peft.safetensors")), 1.0)));
            for (Map.Entry<String, List<LoraMerge.Applied>> run : runs.entrySet()) {
                String want = run.getKey().replace(" (PEFT)", "");
                UNet merged = UNet.load(CPU, LoraMerge.merge(base, run.getValue()).weights(), "model.diffusion_model.", cfg);
                c.compare(run.getKey() + " merged", merged.forward(x, ts, context, null, null), io.tensor(want));
                UNet beside = plain.withAdapter(LoraRuntime.of(base, run.getValue()));
                c.compare(run.getKey() + " at run time", beside.forward(x, ts, context, null, null), io.tensor(want));
            }
            c.compare("eps_base (no adapter)", plain.forward(x, ts, context, null, null), io.tensor("eps_base"));

            // 5. modules that name no layer are reported by name; the rest merge as LoRA A
            Map<?, ?> um = (Map<?, ?>) m.get("unmatched");
            LoraFile withExtra = LoraFile.read(dir.resolve((String) um.get("file")));
            LoraMerge.Merged partial = LoraMerge.merge(base, List.of(LoraMerge.Applied.of(withExtra, 1.0)));
            List<String> reported = partial.unmatched().get(withExtra.name());
            if (!reported.equals(um.get("expected_unmatched_names"))) {
                c.fail("unmatched modules reported as " + reported + ", expected " + um.get("expected_unmatched_names"));
            }
            UNet partialNet = UNet.load(CPU, partial.weights(), "model.diffusion_model.", cfg);
            c.compare("eps_m1.0 (with unmatched modules)", partialNet.forward(x, ts, context, null, null), io.tensor("eps_m1.0"));
        }
        assertTrue(c.report(rel), rel + ": " + c.failures);
    }

    /** sum and sum of squares of each merged weight against the reference's (float64 over the F32 values). */
    private static void checksums(Cases.Compare c, String what, Map<?, ?> sums, Map<String, Tensor> merged) {
        for (Map.Entry<?, ?> e : sums.entrySet()) {
            Map<?, ?> s = (Map<?, ?>) e.getValue();
            Tensor w = merged.get((String) e.getKey());
            if (w == null) {
                c.fail(what + ": no weight " + e.getKey());
                continue;
            }
            double sum = 0;
            double sq = 0;
            for (float v : w.toFloatArray()) {
                sum += v;
                sq += (double) v * v;
            }
            double wantSum = ((Number) s.get("sum")).doubleValue();
            double wantSq = ((Number) s.get("sum_sq")).doubleValue();
            if (Math.abs(sum - wantSum) > 1e-4 + 1e-6 * Math.abs(wantSum) || Math.abs(sq - wantSq) > 1e-6 * wantSq) {
                c.fail(what + " " + e.getKey() + ": sum " + sum + " / " + wantSum + ", sum_sq " + sq + " / " + wantSq);
            }
        }
    }
}
