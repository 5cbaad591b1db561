package dev.jdiffusion.checkpoint.detect;

import java.util.Locale;

/** What the UNet predicts: the noise (ε) or the velocity v = α·ε − σ·x₀. */
public enum Prediction {
    EPSILON, V_PREDICTION;

    /** Parses the spellings the tools use: {@code epsilon}/{@code eps}, {@code v_prediction}/{@code v}. */
    public static Prediction parse(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT).replace("\"", "").replace("'", "")) {
            case "epsilon", "eps" -> EPSILON;
            case "v_prediction", "v", "v-prediction" -> V_PREDICTION;
            default -> throw new IllegalArgumentException("unknown prediction type \"" + s
                    + "\" (expected epsilon or v_prediction)");
        };
    }
}
