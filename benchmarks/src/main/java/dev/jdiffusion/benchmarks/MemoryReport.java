package dev.jdiffusion.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** This process's resident memory as Linux reports it ({@code /proc/self/status}). */
public final class MemoryReport {
    private MemoryReport() {
    }

    /** Resident set size now and at its peak, in MiB ("n/a" where /proc is not available). */
    public static String status() {
        return "resident " + kib("VmRSS") / 1024 + " MiB, peak " + kib("VmHWM") / 1024 + " MiB";
    }

    /** A /proc/self/status field in KiB, or −1. */
    public static long kib(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }
}
