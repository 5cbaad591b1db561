package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class LoraTagsTest {
    @Test
    void tagsComeOutOfThePromptWithTheirStrengths() {
        LoraTags.Parsed p = LoraTags.parse("a castle <lora:style:0.8>, at night <lora:detail> <lyco:loha:0.5:1.2>"
                + "<lora:x:te=0.3:unet=0.9>");
        assertEquals("a castle , at night  ", p.prompt());
        assertEquals(List.of(new LoraTags.Tag("style", 0.8, 0.8), new LoraTags.Tag("detail", 1, 1),
                new LoraTags.Tag("loha", 0.5, 1.2), new LoraTags.Tag("x", 0.3, 0.9)), p.tags());
        assertEquals("no <tags> here <hypernet:y:1>", LoraTags.parse("no <tags> here <hypernet:y:1>").prompt());
        assertThrows(IllegalArgumentException.class, () -> LoraTags.parse("<lora:a:strong>"));
        assertThrows(IllegalArgumentException.class, () -> LoraTags.parse("<lora:a:1:2:3>"));
        assertThrows(IllegalArgumentException.class, () -> LoraTags.parse("<lora: :1>"));
        assertThrows(IllegalArgumentException.class, () -> LoraTags.parse("<lora:a:NaN>"));
    }
}
