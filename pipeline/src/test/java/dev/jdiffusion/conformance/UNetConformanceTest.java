package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.UNet;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case under {@code unet/}: the tiny SD 1.x, SD 2.x and SDXL UNets built from their
 * {@code unet_config}, run on the stored inputs with the F32 and with the F16 weights, against the
 * float64 references, every block's output included. One line per case.
 */
class UNetConformanceTest {
    private static final Backend BACKEND = Cases.backend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @TestFactory
    Stream<DynamicTest> everyUNetCase() throws IOException {
        return Cases.scan("unet", UNetConformanceTest::run);
    }

    /** {@code UNetModel}'s constructor arguments as a {@link UNet.Config}. */
    static UNet.Config config(Map<?, ?> c) {
        int[] mult = ints(c.get("channel_mult"));
        Object depth = c.get("transformer_depth");
        int[] depths = new int[mult.length];
        if (depth instanceof List<?>) {
            depths = ints(depth);
        } else {
            java.util.Arrays.fill(depths, ((Number) depth).intValue());
        }
        int middle = c.containsKey("transformer_depth_middle") ? ((Number) c.get("transformer_depth_middle")).intValue()
                : depths[depths.length - 1];
        return new UNet.Config(num(c, "in_channels", 4), num(c, "out_channels", 4), num(c, "model_channels", 0),
                ints(c.get("attention_resolutions")), num(c, "num_res_blocks", 2), mult, num(c, "num_heads", -1),
                num(c, "num_head_channels", -1), depths, middle, num(c, "context_dim", 0),
                Boolean.TRUE.equals(c.get("use_linear_in_transformer")), num(c, "adm_in_channels", 0));
    }

    private static int num(Map<?, ?> c, String key, int dflt) {
        Object v = c.get(key);
        return v == null ? dflt : ((Number) v).intValue();
    }

    private static int[] ints(Object list) {
        return ((List<?>) list).stream().mapToInt(v -> ((Number) v).intValue()).toArray();
    }

    private static float[][] pairs(SafetensorsFile io, String name) {
        double[] d = io.tensor(name).doubles();
        float[][] r = new float[d.length / 2][2];
        for (int i = 0; i < r.length; i++) {
            r[i][0] = (float) d[2 * i];
            r[i][1] = (float) d[2 * i + 1];
        }
        return r;
    }

    private static void run(String rel, Path dir) throws IOException {
        Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(dir.resolve("manifest.json")));
        Cases.Compare c = new Cases.Compare(BACKEND, 5e-6, 5e-5);
        if (!"unet-forward".equals(m.get("kind"))) {
            c.fail("no runner for kind " + m.get("kind"));
        } else {
            UNet.Config cfg = config((Map<?, ?>) m.get("unet_config"));
            try (SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"));
                 SafetensorsFile im = SafetensorsFile.open(dir.resolve("intermediates.safetensors"))) {
                Tensor x = io.tensor("x").toTensor();
                float[] ts = Cases.floats(io.tensor("timesteps"));
                Tensor context = io.tensor("context").toTensor();
                Tensor y = io.contains("y") ? io.tensor("y").toTensor() : null;
                if (y != null) {
                    // SDXL's vector input rebuilt from its parts (float32 lands within 1e-4: arguments up to 1344)
                    Cases.Compare vec = new Cases.Compare(BACKEND, Double.POSITIVE_INFINITY, 1e-4);
                    vec.compare("y", dev.jdiffusion.core.model.SdxlTextConditioner.vector(BACKEND,
                            BACKEND.upload(io.tensor("y_pooled").toTensor()), pairs(io, "y_original_size"),
                            pairs(io, "y_crop_coords_top_left"), pairs(io, "y_target_size")), io.tensor("y"));
                    vec.failures.forEach(c::fail);
                }
                for (String weights : new String[] {"model.safetensors", "model-fp16.safetensors"}) {
                    boolean half = weights.contains("fp16");
                    try (SafetensorsFile w = SafetensorsFile.open(dir.resolve(weights))) {
                        // the configuration's parameter list is exactly the file's
                        Map<String, String> expected = new java.util.TreeMap<>();
                        cfg.parameterShapes().forEach((k, v) -> expected.put("model.diffusion_model." + k,
                                java.util.Arrays.toString(v)));
                        Map<String, String> actual = new java.util.TreeMap<>();
                        w.tensors().forEach((k, v) -> actual.put(k, java.util.Arrays.toString(
                                java.util.Arrays.stream(v.shape()).mapToInt(Math::toIntExact).toArray())));
                        if (!expected.equals(actual)) {
                            c.fail(weights + ": parameter list differs from UNet.Config.parameterShapes()");
                        }
                        UNet unet = UNet.load(BACKEND, Cases.tensors(BACKEND, w), "model.diffusion_model.", cfg);
                        Map<String, Tensor> seen = new HashMap<>();
                        // copied out while valid: on a GPU the pass reuses the memory of what it observed
                        UNet.Observer keep = (name, t) -> seen.put(name, BACKEND.toHost(t));
                        Tensor eps = unet.forward(x, ts, context, y, half ? null : keep);
                        c.compare(half ? "eps_fp16_weights" : "eps", eps, io.tensor(half ? "eps_fp16_weights" : "eps"));
                        if (!half) {
                            Cases.Compare temb = new Cases.Compare(BACKEND, Double.POSITIVE_INFINITY, 5e-5);
                            temb.compare("t_emb", seen.get("t_emb"), io.tensor("t_emb"));
                            temb.failures.forEach(c::fail);
                            for (String name : im.tensors().keySet()) {
                                c.compare(name, seen.get(name), im.tensor(name));
                            }
                        }
                    }
                }
            }
        }
        assertTrue(c.report(rel), rel + ": " + c.failures);
    }
}
