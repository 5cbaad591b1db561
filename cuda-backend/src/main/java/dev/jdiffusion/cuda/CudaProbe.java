package dev.jdiffusion.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds out once whether a CUDA device can be used through the driver API. Without an NVIDIA driver
 * the JCuda native library cannot load ({@code libcuda.so.1} missing): that is reported as
 * "unavailable" with the reason, never thrown.
 */
public final class CudaProbe {
    private static final Logger LOG = LoggerFactory.getLogger(CudaProbe.class);
    private static volatile Result cached;

    /** The outcome: whether CUDA is usable, how many devices, the first device's name, or why not. */
    public record Result(boolean available, int devices, String deviceName, String reason) {
        @Override
        public String toString() {
            return available ? devices + " device(s), first: " + deviceName : "unavailable (" + reason + ")";
        }
    }

    private CudaProbe() {
    }

    public static Result probe() {
        Result r = cached;
        if (r == null) {
            synchronized (CudaProbe.class) {
                r = cached;
                if (r == null) {
                    r = doProbe();
                    cached = r;
                }
            }
        }
        return r;
    }

    /** One line out of JCuda's long native-loading report. */
    static String reason(UnsatisfiedLinkError e) {
        String msg = String.valueOf(e.getMessage());
        if (msg.contains("libcuda.so")) {
            return "no NVIDIA driver: libcuda.so.1 not found";
        }
        if (msg.contains("nvcuda.dll")) {
            return "no NVIDIA driver: nvcuda.dll not found";
        }
        int nl = msg.indexOf('\n');
        return "JCuda natives did not load: " + (nl > 0 ? msg.substring(0, nl) : msg);
    }

    private static Result doProbe() {
        String oldTmp = System.getProperty("java.io.tmpdir");
        try {
            // JCuda extracts its native libraries into java.io.tmpdir and may pick up stale copies
            // left there by another version: give it a fresh directory.
            Path dir = Files.createTempDirectory("jdiffusion-jcuda-");
            dir.toFile().deleteOnExit();
            System.setProperty("java.io.tmpdir", dir.toString());
            JCudaDriver.setExceptionsEnabled(true);
            JCudaDriver.cuInit(0);
            int[] count = new int[1];
            JCudaDriver.cuDeviceGetCount(count);
            if (count[0] == 0) {
                return new Result(false, 0, null, "the driver reports no CUDA device");
            }
            CUdevice dev = new CUdevice();
            JCudaDriver.cuDeviceGet(dev, 0);
            byte[] name = new byte[256];
            JCudaDriver.cuDeviceGetName(name, name.length, dev);
            String n = new String(name, java.nio.charset.StandardCharsets.US_ASCII).trim().replace("\0", "");
            return new Result(true, count[0], n, null);
        } catch (UnsatisfiedLinkError e) {
            LOG.debug("CUDA natives did not load", e);
            return new Result(false, 0, null, reason(e));
        } catch (RuntimeException | IOException e) {
            LOG.debug("CUDA probe failed", e);
            return new Result(false, 0, null, e.toString());
        } finally {
            if (oldTmp != null) {
                System.setProperty("java.io.tmpdir", oldTmp);
            }
        }
    }
}
