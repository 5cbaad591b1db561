package dev.jdiffusion.checkpoint.detect;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.CheckpointFormatException;
import dev.jdiffusion.checkpoint.StoredTensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Tells the model family, the UNet's input channels (9 for inpainting models) and the prediction
 * type of a checkpoint in single-file naming, from its keys and shapes.
 *
 * <p>Family: SDXL has {@code label_emb} (refiner: only the OpenCLIP bigG encoder, or a 2560-wide
 * {@code label_emb}); SD 2.x has an OpenCLIP text encoder ({@code cond_stage_model.model.}) or,
 * in a UNet-only file, linear transformer projections; SD 1.x has the OpenAI CLIP encoder
 * ({@code cond_stage_model.transformer.}) or convolutional projections.
 *
 * <p>Prediction type cannot always be told from weights. In order: an explicit override, the
 * diffusers scheduler config, a {@code .yaml} beside the file ({@code parameterization: "v"}),
 * the file's {@code modelspec.prediction_type} metadata, then the family's default (ε for SD 1.x
 * and SDXL; v for SD 2.x, whose 768-pixel models are v-prediction, logged as a guess).
 */
public final class ModelDetector {
    private static final Logger LOG = LoggerFactory.getLogger(ModelDetector.class);
    private static final String UNET = "model.diffusion_model.";
    private static final Pattern PARAM = Pattern.compile("(?m)^\\s*parameterization:\\s*[\"']?([A-Za-z_]+)[\"']?");

    private ModelDetector() {
    }

    /** The parts of a full model that a checkpoint holds. */
    public enum Component {
        UNET, VAE, TEXT_ENCODER, TEXT_ENCODER_2
    }

    /** What the detector found and where the prediction type came from. */
    public record ModelInfo(ModelFamily family, int inChannels, Prediction prediction, String predictionSource,
                            Set<Component> components) {
        /** Inpainting UNets take the latent, the mask and the masked image's latent: 4 + 1 + 4 channels. */
        public boolean inpainting() {
            return inChannels == 9;
        }
    }

    public static ModelInfo detect(Checkpoint c) throws CheckpointFormatException {
        return detect(c, null);
    }

    /** Detects the family; {@code override} (may be null) fixes the prediction type. */
    public static ModelInfo detect(Checkpoint c, Prediction override) throws CheckpointFormatException {
        Map<String, StoredTensor> t = c.tensors();
        StoredTensor convIn = t.get(UNET + "input_blocks.0.0.weight");
        if (convIn == null || convIn.shape().length != 4) {
            throw unknown(c, "no UNet input convolution (" + UNET + "input_blocks.0.0.weight)");
        }
        Set<Component> components = EnumSet.of(Component.UNET);
        if (hasPrefix(t, "first_stage_model.")) {
            components.add(Component.VAE);
        }
        boolean clipL = hasPrefix(t, "cond_stage_model.transformer.") || hasPrefix(t, "conditioner.embedders.0.transformer.");
        boolean openClip = hasPrefix(t, "cond_stage_model.model.") || hasPrefix(t, "conditioner.embedders.0.model.");
        boolean bigG2 = hasPrefix(t, "conditioner.embedders.1.model.");
        if (clipL || openClip) {
            components.add(Component.TEXT_ENCODER);
        }
        if (bigG2) {
            components.add(Component.TEXT_ENCODER_2);
        }
        ModelFamily family;
        StoredTensor label = t.get(UNET + "label_emb.0.0.weight");
        if (label != null) {
            boolean refiner = hasPrefix(t, "conditioner.embedders.0.model.") && !bigG2
                    || (!clipL && !openClip && !bigG2 && label.shape().length == 2 && label.shape()[1] == 2560);
            family = refiner ? ModelFamily.SDXL_REFINER : ModelFamily.SDXL_BASE;
        } else if (hasPrefix(t, "cond_stage_model.model.")) {
            family = ModelFamily.SD2;
        } else if (hasPrefix(t, "cond_stage_model.transformer.")) {
            family = ModelFamily.SD1;
        } else {
            StoredTensor projIn = t.entrySet().stream()
                    .filter(e -> e.getKey().startsWith(UNET) && e.getKey().endsWith(".proj_in.weight"))
                    .map(Map.Entry::getValue).findFirst().orElse(null);
            if (projIn == null) {
                throw unknown(c, "a UNet without text encoder and without transformer blocks");
            }
            family = projIn.shape().length == 2 ? ModelFamily.SD2 : ModelFamily.SD1;
        }
        int inChannels = Math.toIntExact(convIn.shape()[1]);
        Prediction prediction;
        String source;
        if (override != null) {
            prediction = override;
            source = "override";
        } else if (c.metadata().get("prediction_type") != null) {
            prediction = Prediction.parse(c.metadata().get("prediction_type"));
            source = "diffusers scheduler config";
        } else if (yaml(c) instanceof Prediction p) {
            prediction = p;
            source = "yaml config beside the file";
        } else if (c.metadata().get("modelspec.prediction_type") != null) {
            prediction = Prediction.parse(c.metadata().get("modelspec.prediction_type"));
            source = "modelspec metadata";
        } else {
            prediction = family == ModelFamily.SD2 ? Prediction.V_PREDICTION : Prediction.EPSILON;
            source = "family default";
            if (family == ModelFamily.SD2) {
                LOG.warn("{}: SD 2.x weights do not say whether they predict v or ε; assuming v-prediction "
                        + "(768-pixel models); give the prediction type explicitly for 512-pixel base models", c.source());
            }
        }
        return new ModelInfo(family, inChannels, prediction, source, components);
    }

    /** The {@code parameterization} of an LDM yaml config next to the file ({@code x.yaml} for {@code x.ckpt}), if any. */
    private static Prediction yaml(Checkpoint c) {
        try {
            Path p = Path.of(c.source());
            String name = p.getFileName().toString();
            int dot = name.lastIndexOf('.');
            Path y = p.resolveSibling((dot > 0 ? name.substring(0, dot) : name) + ".yaml");
            if (!Files.isRegularFile(y)) {
                return null;
            }
            Matcher m = PARAM.matcher(Files.readString(y));
            return m.find() ? Prediction.parse(m.group(1)) : Prediction.EPSILON;
        } catch (IOException | IllegalArgumentException e) {
            LOG.warn("{}: could not read the yaml beside it: {}", c.source(), e.getMessage());
            return null;
        }
    }

    private static boolean hasPrefix(Map<String, StoredTensor> t, String prefix) {
        for (String k : t.keySet()) {
            if (k.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    private static CheckpointFormatException unknown(Checkpoint c, String why) {
        Map<String, Integer> prefixes = new TreeMap<>();
        StringBuilder shapes = new StringBuilder();
        int shown = 0;
        for (Map.Entry<String, StoredTensor> e : c.tensors().entrySet()) {
            String[] parts = e.getKey().split("\\.");
            String prefix = parts.length > 2 ? parts[0] + "." + parts[1] + "." : e.getKey();
            prefixes.merge(prefix, 1, Integer::sum);
            if (shown < 5) {
                shapes.append(shown == 0 ? "" : ", ").append(e.getKey()).append(' ')
                        .append(Arrays.toString(e.getValue().shape()));
                shown++;
            }
        }
        return new CheckpointFormatException(c.source() + ": not a model jdiffusion knows (" + why + "); found "
                + c.tensors().size() + " tensors, by prefix " + prefixes + (shown > 0 ? "; e.g. " + shapes : ""));
    }
}
