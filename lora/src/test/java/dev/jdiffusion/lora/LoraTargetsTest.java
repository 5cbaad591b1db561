package dev.jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The names each naming gives a layer, for the SDXL layout (the SD 1.x one is checked by the lora/ conformance case). */
class LoraTargetsTest {
    @Test
    void sdxlLayersAnswerToKohyasAndPeftsNames() {
        String te1 = "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight";
        String te2 = "conditioner.embedders.1.model.transformer.resblocks.0.mlp.c_fc.weight";
        String qkv = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight";
        String unet = "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight";
        LoraTargets t = LoraTargets.of(Map.of(te1, new int[] {768, 768}, te2, new int[] {5120, 1280}, qkv, new int[] {3840, 1280},
                unet, new int[] {640, 640}));
        assertEquals(te1, t.target("lora_te1_text_model_encoder_layers_0_self_attn_q_proj").weightKey());
        assertEquals(te1, t.target("text_encoder.text_model.encoder.layers.0.self_attn.q_proj").weightKey());
        assertEquals(te2, t.target("lora_te2_text_model_encoder_layers_0_mlp_fc1").weightKey());
        assertEquals(te2, t.target("text_encoder_2.text_model.encoder.layers.0.mlp.fc1").weightKey());
        LoraTargets.Target v = t.target("lora_te2_text_model_encoder_layers_0_self_attn_v_proj");
        assertEquals(List.of(qkv, 2560, 1280), List.of(v.weightKey(), v.rowFrom(), v.rows()));
        assertEquals(LoraTargets.Part.TEXT_ENCODER, v.part());
        LoraTargets.Target u = t.target("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q");
        assertEquals(unet, u.weightKey());
        assertEquals(LoraTargets.Part.UNET, u.part());
        assertNull(t.target("lora_te_text_model_encoder_layers_0_self_attn_q_proj"), "SDXL has no lora_te_ encoder");
        assertEquals(List.of("lora_unet_nothing"), t.unmatched(List.of("lora_unet_nothing",
                "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q")));
    }
}
