package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.StoredTensor;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.json.Json;
import dev.jdiffusion.core.model.Vae;
import dev.jdiffusion.core.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case under {@code vae/}: the tiny autoencoders' posterior, samples, decodings at both latent
 * scale factors and every block's output, against the float64 references. One line per case.
 */
class VaeConformanceTest {
    private static final Backend BACKEND = Cases.backend();

    @AfterAll
    static void close() {
        BACKEND.close();
    }

    @TestFactory
    Stream<DynamicTest> everyVaeCase() throws IOException {
        return Cases.scan("vae", VaeConformanceTest::run);
    }

    /**
     * The mean the decoder starts from for {@code decoded_from_mean}: our encoder's, so that the two
     * networks are checked in series; in F16 the reference's, since there each network is held to
     * its bound on its own: the encoder's error in the mean (1.3–1.4·10⁻³ on the tiny VAEs) comes
     * out of the decoder amplified (2.2–3.6·10⁻³ in the picture, against 1.2–1.6·10⁻³ from the
     * reference's mean), a property of the random weights rather than of the kernels.
     */
    private static Tensor meanToDecode(Vae.Posterior p, StoredTensor reference) {
        return Cases.halfPrecision(BACKEND) ? reference.toTensor() : p.mean();
    }

    private static void run(String rel, Path dir) throws IOException {
        Map<?, ?> m = (Map<?, ?>) Json.parse(Files.readString(dir.resolve("manifest.json")));
        Cases.Compare c;
        if (!"vae".equals(m.get("kind"))) {
            c = new Cases.Compare(BACKEND, 0, 0);
            c.fail("no runner for kind " + m.get("kind"));
        } else if (Files.exists(dir.resolve("golden.safetensors"))) {
            c = new Cases.Compare(BACKEND, 1e-4, 1e-3);
            try (SafetensorsFile w = SafetensorsFile.open(dir.resolve("weights.safetensors"));
                 SafetensorsFile g = SafetensorsFile.open(dir.resolve("golden.safetensors"))) {
                Vae vae = Vae.load(BACKEND, Cases.tensors(BACKEND, w), "first_stage_model.");
                Map<String, Tensor> seen = new HashMap<>();
                // copied out while valid: on a GPU the pass reuses the memory of what it observed
                Vae.Observer keep = (name, t) -> seen.put(name, BACKEND.toHost(t));
                Vae.Posterior p = vae.encode(g.tensor("x").toTensor(), keep);
                c.compare("encoder_out", seen.get("encoder.conv_out"), g.tensor("encoder_out"));
                c.compare("moments", p.moments(), g.tensor("moments"));
                c.compare("mean", p.mean(), g.tensor("mean"));
                c.compare("logvar", p.logvar(), g.tensor("logvar"));
                c.compare("std", p.std(), g.tensor("std"));
                c.compare("decoded", vae.decode(g.tensor("z").toTensor(), keep), g.tensor("decoded"));
                c.compare("post_quant_conv_out", seen.get("post_quant_conv"), g.tensor("post_quant_conv_out"));
                for (String name : g.tensors().keySet()) {
                    if (name.startsWith("intermediate.")) {
                        c.compare(name, seen.get(name.substring("intermediate.".length())), g.tensor(name));
                    }
                }
                c.compare("decoded_from_mean", vae.decode(meanToDecode(p, g.tensor("mean")), null),
                        g.tensor("decoded_from_mean"));
            }
        } else {
            c = new Cases.Compare(BACKEND, 2e-5, 1e-4);
            try (SafetensorsFile w = SafetensorsFile.open(dir.resolve("model.safetensors"));
                 SafetensorsFile io = SafetensorsFile.open(dir.resolve("io.safetensors"));
                 SafetensorsFile im = SafetensorsFile.open(dir.resolve("intermediates.safetensors"))) {
                Vae vae = Vae.load(BACKEND, Cases.tensors(BACKEND, w), "first_stage_model.");
                Map<String, Tensor> seen = new HashMap<>();
                // copied out while valid: on a GPU the pass reuses the memory of what it observed
                Vae.Observer keep = (name, t) -> seen.put(name, BACKEND.toHost(t));
                Vae.Posterior p = vae.encode(io.tensor("x").toTensor(), keep);
                c.compare("moments", p.moments(), io.tensor("moments"));
                c.compare("mean", p.mean(), io.tensor("mean"));
                c.compare("logvar", p.logvar(), io.tensor("logvar"));
                c.compare("std", p.std(), io.tensor("std"));
                Tensor sample = vae.sample(p, io.tensor("eps").toTensor());
                c.compare("z_sample", sample, io.tensor("z_sample"));
                c.compare("latent_sd1", BACKEND.scale(sample, Vae.SD_SCALE_FACTOR), io.tensor("latent_sd1"));
                c.compare("latent_sdxl", BACKEND.scale(sample, Vae.SDXL_SCALE_FACTOR), io.tensor("latent_sdxl"));
                c.compare("decoded_from_mean", vae.decode(meanToDecode(p, io.tensor("mean")), null),
                        io.tensor("decoded_from_mean"));
                Tensor latent = BACKEND.upload(io.tensor("latent_unet").toTensor());
                c.compare("decoded_sd1", vae.decode(BACKEND.scale(latent, 1 / Vae.SD_SCALE_FACTOR), keep),
                        io.tensor("decoded_sd1"));
                c.compare("decoded_sdxl", vae.decode(BACKEND.scale(latent, 1 / Vae.SDXL_SCALE_FACTOR), null),
                        io.tensor("decoded_sdxl"));
                for (String name : im.tensors().keySet()) {
                    c.compare("intermediate " + name, seen.get(name), im.tensor(name));
                }
            }
        }
        assertTrue(c.report(rel), rel + ": " + c.failures);
    }
}
