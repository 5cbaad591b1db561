package dev.jdiffusion.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The PyTorch UNet of the comparison script ({@code pytorch/unet_step.py}) is the reference network:
 * its {@code --check} mode runs every conformance UNet case (SD 1.x, 2.x, XL) in float32 against the
 * golden outputs. Where no python3 with torch and numpy is installed (PyTorch is not a dependency of
 * the build) the check is skipped with that reason.
 */
class PyTorchUNetTest {

    private static String pythonWithTorch() throws InterruptedException {
        for (String python : new String[] {"python3", "/usr/bin/python3"}) {
            try {
                Process p = new ProcessBuilder(python, "-c", "import torch, numpy").redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0) {
                    return python;
                }
            } catch (IOException e) {
                // not installed under this name
            }
        }
        return null;
    }

    @Test
    void theComparisonScriptsUNetMatchesTheConformanceCases() throws Exception {
        Path root = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("unet")), "no conformance data at " + root);
        String python = pythonWithTorch();
        Assumptions.assumeTrue(python != null, "no python3 with torch and numpy: the PyTorch comparison script is not checked");
        List<String> cmd = new ArrayList<>(List.of(python, "pytorch/unet_step.py", "--check"));
        try (Stream<Path> cases = Files.list(root.resolve("unet"))) {
            cases.filter(d -> Files.isRegularFile(d.resolve("manifest.json"))).sorted().forEach(d -> cmd.add(d.toString()));
        }
        int count = cmd.size() - 3;
        assertTrue(count >= 3, "UNet cases under " + root.resolve("unet") + ": " + count);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), "the script did not finish");
        System.out.print(out);
        assertEquals(0, p.exitValue(), out);
        assertEquals(count, out.lines().filter(l -> l.startsWith("check ") && l.contains(" PASS ")).count(), out);
    }
}
