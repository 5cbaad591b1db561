package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.ClipTextEncoder;
import dev.jdiffusion.core.model.SdxlTextConditioner;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case under {@code clip/} of the conformance data: the tiny CLIP text encoders (SD 1.x and
 * open_clip naming, F32 and F16 weights) and the SDXL conditioning, loaded from their safetensors
 * files and compared with the float64 references, tensor by tensor. One line per case.
 */
class ClipConformanceTest {
    private static final Backend BACKEND = Cases.backend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @TestFactory
    Stream<DynamicTest> everyClipCase() throws IOException {
        return Cases.scan("clip", ClipConformanceTest::run);
    }

    private static void run(String rel, Path dir) throws IOException {
        Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(dir.resolve("manifest.json")));
        String kind = (String) m.get("kind");
        Cases.Compare c;
        switch (kind) {
            case "clip-text" -> {
                c = new Cases.Compare(BACKEND, 1e-4, 1e-4);
                Map<?, ?> cfg = (Map<?, ?>) m.get("config");
                try (SafetensorsFile w = SafetensorsFile.open(dir.resolve("weights.safetensors"));
                     SafetensorsFile g = SafetensorsFile.open(dir.resolve("golden.safetensors"))) {
                    boolean sd1 = ((String) cfg.get("weight_naming")).startsWith("SD1");
                    Map<String, Tensor> weights = Cases.tensors(BACKEND, w);
                    ClipTextEncoder enc = ClipTextEncoder.load(BACKEND, weights, sd1 ? "cond_stage_model.transformer.text_model."
                            : "cond_stage_model.model.", num(cfg.get("heads")), activation((String) cfg.get("activation")));
                    if (sd1) {
                        enc = enc.withProjection(weights.get("text_projection"));
                    }
                    ClipTextEncoder.Output out = enc.encode(Cases.ids(g.tensor("input_ids")));
                    c.compare("embeddings", out.hiddenStates().get(0), g.tensor("embeddings"));
                    double[] all = g.tensor("all_layer_outputs").doubles();
                    int per = all.length / enc.layers();
                    for (int l = 0; l < enc.layers(); l++) {
                        c.compare("all_layer_outputs[" + l + "]", out.hiddenStates().get(l + 1),
                                java.util.Arrays.copyOfRange(all, l * per, (l + 1) * per));
                    }
                    c.compare("last_hidden_state", out.lastHiddenState(), g.tensor("last_hidden_state"));
                    c.compare("penultimate_hidden_state", out.penultimate(), g.tensor("penultimate_hidden_state"));
                    c.compare("penultimate_hidden_state_ln_final", enc.clipSkip(out, 2),
                            g.tensor("penultimate_hidden_state_ln_final"));
                    c.compare("pooled_output", out.pooled(), g.tensor("pooled_output"));
                    c.compare("text_embeds", out.projected(), g.tensor("text_embeds"));
                }
            }
            case "clip-text-encoder" -> {
                c = new Cases.Compare(BACKEND, 5e-6, 5e-5);
                Map<?, ?> cfg = (Map<?, ?>) m.get("config");
                try (SafetensorsFile w = SafetensorsFile.open(dir.resolve("model.safetensors"));
                     SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"))) {
                    Map<String, Tensor> weights = Cases.tensors(BACKEND, w);
                    boolean sd1 = weights.containsKey("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight");
                    ClipTextEncoder enc = ClipTextEncoder.load(BACKEND, weights, sd1 ? "cond_stage_model.transformer.text_model."
                            : "cond_stage_model.model.", num(cfg.get("heads")), activation((String) cfg.get("hidden_act")));
                    if (io.contains("text_projection")) {
                        enc = enc.withProjection(BACKEND.upload(io.tensor("text_projection").toTensor()));
                    }
                    ClipTextEncoder.Output out = enc.encode(Cases.ids(io.tensor("input_ids")));
                    for (int i = 0; i <= enc.layers(); i++) {
                        c.compare("hidden_states." + i, out.hiddenStates().get(i), io.tensor("hidden_states." + i));
                    }
                    c.compare("last_hidden_state", out.lastHiddenState(), io.tensor("last_hidden_state"));
                    c.compare("penultimate_hidden_state", out.penultimate(), io.tensor("penultimate_hidden_state"));
                    c.compare("penultimate_ln", enc.clipSkip(out, 2), io.tensor("penultimate_ln"));
                    c.compare("pooled", out.pooled(), io.tensor("pooled"));
                    c.compare("pooled_projected", out.projected(), io.tensor("pooled_projected"));
                }
            }
            case "sdxl-text-conditioning" -> {
                c = new Cases.Compare(BACKEND, 5e-6, 5e-5);
                Map<?, ?> emb = (Map<?, ?>) m.get("embedders");
                try (SafetensorsFile w = SafetensorsFile.open(dir.resolve("model.safetensors"));
                     SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"))) {
                    Map<String, Tensor> weights = Cases.tensors(BACKEND, w);
                    ClipTextEncoder[] encoders = new ClipTextEncoder[2];
                    for (int e = 0; e < 2; e++) {
                        Map<?, ?> spec = (Map<?, ?>) emb.get(Integer.toString(e));
                        Map<?, ?> cfg = (Map<?, ?>) spec.get("config");
                        encoders[e] = ClipTextEncoder.load(BACKEND, weights, (String) spec.get("prefix"), num(cfg.get("heads")),
                                activation((String) cfg.get("hidden_act")));
                    }
                    SdxlTextConditioner.Conditioning out = new SdxlTextConditioner(BACKEND, encoders[0], encoders[1])
                            .encode(Cases.ids(io.tensor("input_ids_0")), Cases.ids(io.tensor("input_ids_1")));
                    c.compare("crossattn", out.crossAttention(), io.tensor("crossattn"));
                    c.compare("vector_text", out.pooled(), io.tensor("vector_text"));
                }
            }
            default -> {
                c = new Cases.Compare(BACKEND, 0, 0);
                c.fail("no runner for kind " + kind);
            }
        }
        assertTrue(c.report(rel), rel + ": " + c.failures);
    }

    private static ClipTextEncoder.Activation activation(String s) {
        return s.startsWith("quick_gelu") ? ClipTextEncoder.Activation.QUICK_GELU : ClipTextEncoder.Activation.GELU;
    }

    private static int num(Object o) {
        return ((Number) o).intValue();
    }
}
