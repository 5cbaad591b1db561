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
 * The PyTorch side of the comparison scripts is the reference: {@code pytorch/unet_step.py --check}
 * runs every conformance UNet case (SD 1.x, 2.x, XL) in float32 against the golden outputs, and
 * {@code pytorch/sd_pipeline.py} its text encoder, VAE decoder and whole Euler / Euler a txt2img runs
 * against theirs. Where no python3 with torch and numpy is installed (PyTorch is not a dependency of
 * the build) the checks are skipped with that reason.
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

    private static Path root() {
        Path root = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
        Assumptions.assumeTrue(Files.isDirectory(root.resolve("unet")), "no conformance data at " + root);
        return root;
    }

    /** The case folders (holding a manifest.json) directly under {@code area}. */
    private static List<String> cases(Path root, String area) throws IOException {
        try (Stream<Path> dirs = Files.list(root.resolve(area))) {
            return dirs.filter(d -> Files.isRegularFile(d.resolve("manifest.json"))).sorted().map(Path::toString).toList();
        }
    }

    /** Runs a script; returns its output after checking it exited 0 with {@code passes} PASS lines. */
    private static String run(List<String> cmd, int passes) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, TimeUnit.MINUTES), "the script did not finish");
        System.out.print(out);
        assertEquals(0, p.exitValue(), out);
        assertEquals(passes, out.lines().filter(l -> l.startsWith("check ") && l.contains(" PASS ")).count(), out);
        return out;
    }

    @Test
    void theComparisonScriptsUNetMatchesTheConformanceCases() throws Exception {
        Path root = root();
        String python = pythonWithTorch();
        Assumptions.assumeTrue(python != null, "no python3 with torch and numpy: the PyTorch comparison script is not checked");
        List<String> unets = cases(root, "unet");
        assertTrue(unets.size() >= 3, "UNet cases under " + root.resolve("unet") + ": " + unets);
        List<String> cmd = new ArrayList<>(List.of(python, "pytorch/unet_step.py", "--check"));
        cmd.addAll(unets);
        run(cmd, unets.size());
    }

    @Test
    void theComparisonPipelineMatchesTheConformanceCases() throws Exception {
        Path root = root();
        String python = pythonWithTorch();
        Assumptions.assumeTrue(python != null, "no python3 with torch and numpy: the PyTorch comparison script is not checked");
        String clip = root.resolve("clip/sd1-quickgelu-w64-h4-l3").toString();
        List<String> vaes = cases(root, "vae");
        List<String> pipelines = List.of(root.resolve("pipeline/t2i-euler_a-karras-10").toString(),
                root.resolve("pipeline/t2i-euler-discrete-8").toString());
        List<String> cmd = new ArrayList<>(List.of(python, "pytorch/sd_pipeline.py", "--check-clip", clip, "--check-vae"));
        cmd.addAll(vaes);
        cmd.add("--check-pipeline");
        cmd.addAll(pipelines);
        // two hidden states of the encoder, the decoded image of each VAE case, sigmas + latent + image of each run
        run(cmd, 2 + vaes.size() + 3 * pipelines.size());
    }
}
