package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CudaProbeTest {

    @Test
    void probeNeverThrowsAndExplainsAnAbsentDevice() {
        CudaProbe.Result r = CudaProbe.probe();
        if (r.available()) {
            assertTrue(r.devices() > 0);
            assertNotNull(r.deviceName());
        } else {
            assertNotNull(r.reason());
            assertTrue(r.toString().startsWith("unavailable ("), r.toString());
        }
        assertTrue(r == CudaProbe.probe(), "the probe runs once");
    }

    @Test
    void reasonIsOneLine() {
        assertEquals("no NVIDIA driver: libcuda.so.1 not found", CudaProbe.reason(new UnsatisfiedLinkError(
                "Error while loading\n/tmp/x.so: libcuda.so.1: cannot open shared object file")));
        assertEquals("JCuda natives did not load: first", CudaProbe.reason(new UnsatisfiedLinkError("first\nsecond")));
    }
}
