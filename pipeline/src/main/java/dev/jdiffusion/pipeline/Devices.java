package dev.jdiffusion.pipeline;

import dev.jdiffusion.core.backend.Backend;
import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.CudaProbe;
import java.util.Locale;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where the networks run, as users name it: {@code cpu} (every core, the Vector API), {@code cuda}
 * or {@code cuda:N} (an NVIDIA GPU; an error that says why when none can be used), {@code auto}
 * (the first GPU when one can be used, else the CPU, saying which and why).
 */
public final class Devices {
    private static final Logger LOG = LoggerFactory.getLogger(Devices.class);

    private Devices() {
    }

    /** The backend a device name stands for. */
    public static Backend open(String device) {
        return open(device, "autocast");
    }

    /**
     * The backend a device name stands for, computing in a precision named as A1111 names it:
     * {@code autocast} (on a GPU, products, convolutions and attention on the tensor cores in the
     * weights' half precision with float32 accumulation) or {@code full} (float32 throughout, slower;
     * A1111's {@code --precision full --no-half}). The CPU computes in float32 either way.
     */
    public static Backend open(String device, String precision) {
        boolean full = fullPrecision(precision);
        return open(device, CudaProbe.probe(), ordinal -> CudaBackend.open(ordinal, full));
    }

    /** Whether a precision name means float32 throughout. */
    static boolean fullPrecision(String precision) {
        String p = precision == null ? "autocast" : precision.strip().toLowerCase(Locale.ROOT);
        return switch (p) {
            case "autocast", "half" -> false;
            case "full", "fp32", "float32" -> true;
            default -> throw new IllegalArgumentException("unknown precision \"" + precision + "\": use autocast or full");
        };
    }

    /** As {@link #open(String)} with the CUDA probe's outcome and the GPU backend's factory given (for tests). */
    static Backend open(String device, CudaProbe.Result cuda, IntFunction<Backend> gpu) {
        String d = device == null ? "auto" : device.strip().toLowerCase(Locale.ROOT);
        if (d.equals("cpu")) {
            return new CpuBackend();
        }
        if (d.equals("auto")) {
            if (cuda.available()) {
                LOG.info("device auto: CUDA device 0 ({})", cuda.deviceName());
                return gpu.apply(0);
            }
            LOG.info("device auto: the CPU, as CUDA is unavailable ({})", cuda.reason());
            return new CpuBackend();
        }
        if (d.equals("cuda") || d.startsWith("cuda:")) {
            int ordinal = 0;
            if (d.startsWith("cuda:")) {
                try {
                    ordinal = Integer.parseInt(d.substring(5));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("device \"" + device + "\": the GPU number after cuda: must be an integer");
                }
            }
            if (!cuda.available()) {
                throw new IllegalStateException("device " + d + " asked for, but no CUDA device can be used: " + cuda.reason()
                        + "; use the device cpu (or auto)");
            }
            if (ordinal < 0 || ordinal >= cuda.devices()) {
                throw new IllegalArgumentException("device " + d + ": this machine has " + cuda.devices() + " CUDA device(s), 0.."
                        + (cuda.devices() - 1));
            }
            return gpu.apply(ordinal);
        }
        throw new IllegalArgumentException("unknown device \"" + device + "\": use cpu, cuda, cuda:N or auto");
    }
}
