package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.cpu.CpuBackend;
import java.util.Map;
import org.junit.jupiter.api.Test;

class VaeTest {
    @Test
    void aCheckpointWithoutAVaeIsReportedByTheKeysItLacks() {
        try (CpuBackend cpu = new CpuBackend(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Vae.load(cpu, Map.of(), "first_stage_model."));
            assertTrue(e.getMessage().contains("first_stage_model.encoder.conv_in.weight"), e.getMessage());
        }
    }
}
