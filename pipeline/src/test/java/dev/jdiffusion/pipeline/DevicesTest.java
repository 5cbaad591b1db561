package dev.jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.cuda.CudaProbe;
import dev.jdiffusion.cuda.FakeDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;

class DevicesTest {
    private static final CudaProbe.Result NO_DRIVER = new CudaProbe.Result(false, 0, null, "no NVIDIA driver: libcuda.so.1 not found");
    private static final CudaProbe.Result TWO_GPUS = new CudaProbe.Result(true, 2, "NVIDIA H100", null);

    /** GPU backends on fake devices, recording the ordinals asked for. */
    private static final class Gpus implements IntFunction<Backend> {
        final List<Integer> asked = new ArrayList<>();

        @Override
        public Backend apply(int ordinal) {
            asked.add(ordinal);
            return new FakeDevice().backend();
        }
    }

    @Test
    void namesPickTheBackend() {
        Gpus gpus = new Gpus();
        try (Backend b = Devices.open("cpu", TWO_GPUS, gpus)) {
            assertInstanceOf(CpuBackend.class, b);
        }
        try (Backend b = Devices.open("auto", NO_DRIVER, gpus)) {
            assertInstanceOf(CpuBackend.class, b, "auto falls back to the CPU");
        }
        try (Backend b = Devices.open(" Auto ", TWO_GPUS, gpus)) {
            assertEquals("fake", b.name());
        }
        try (Backend b = Devices.open("CUDA", TWO_GPUS, gpus)) {
            assertEquals("fake", b.name());
        }
        try (Backend b = Devices.open("cuda:1", TWO_GPUS, gpus)) {
            assertEquals("fake", b.name());
        }
        assertEquals(List.of(0, 0, 1), gpus.asked);
    }

    @Test
    void aGpuThatCannotBeUsedIsAnErrorThatSaysWhy() {
        Gpus gpus = new Gpus();
        IllegalStateException none = assertThrows(IllegalStateException.class, () -> Devices.open("cuda", NO_DRIVER, gpus));
        assertTrue(none.getMessage().contains("no CUDA device can be used: no NVIDIA driver: libcuda.so.1 not found"),
                none.getMessage());
        IllegalArgumentException two = assertThrows(IllegalArgumentException.class, () -> Devices.open("cuda:2", TWO_GPUS, gpus));
        assertTrue(two.getMessage().contains("2 CUDA device(s), 0..1"), two.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Devices.open("cuda:x", TWO_GPUS, gpus));
        assertThrows(IllegalArgumentException.class, () -> Devices.open("cuda:-1", TWO_GPUS, gpus));
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> Devices.open("gpu", TWO_GPUS, gpus));
        assertTrue(unknown.getMessage().contains("use cpu, cuda, cuda:N or auto"), unknown.getMessage());
        assertTrue(gpus.asked.isEmpty());
    }

    @Test
    void precisionsAreNamedAsA1111NamesThem() {
        assertEquals(false, Devices.fullPrecision("autocast"));
        assertEquals(false, Devices.fullPrecision(null));
        assertEquals(true, Devices.fullPrecision(" Full "));
        assertEquals(true, Devices.fullPrecision("fp32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Devices.fullPrecision("double"));
        assertTrue(e.getMessage().contains("unknown precision \"double\": use autocast or full"), e.getMessage());
        try (Backend b = Devices.open("cpu", "full")) {
            assertInstanceOf(CpuBackend.class, b);
        }
    }
}
