package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.Checkpoint;
import dev.jdiffusion.checkpoint.Checkpoints;
import dev.jdiffusion.checkpoint.StoredType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConvertCommandTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {
    }

    private static Run run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        int code;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            code = Main.commandLine().setErr(new PrintWriter(err, true)).execute(args);
        } finally {
            System.setOut(old);
        }
        return new Run(code, buf.toString(StandardCharsets.UTF_8), err.toString());
    }

    @Test
    void ckptToFp16SafetensorsAndToDiffusers() throws Exception {
        Path ckpt = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("ckpt/sd1-tiny.ckpt");
        Assumptions.assumeTrue(Files.exists(ckpt), "no conformance data");
        Path out = dir.resolve("unet.safetensors");
        Run r = run("convert", ckpt.toString(), out.toString(), "--dtype", "fp16");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("494 tensors as F16"), r.out());
        assertTrue(r.out().contains("SD1"), r.out());
        try (Checkpoint c = Checkpoints.open(out)) {
            assertTrue(c.tensors().values().stream().allMatch(t -> t.type() == StoredType.F16));
        }
        Path folder = dir.resolve("diffusers");
        Run d = run("convert", out.toString(), folder.toString());
        assertEquals(0, d.code(), d.err());
        assertTrue(Files.isRegularFile(folder.resolve("unet/diffusion_pytorch_model.safetensors")));
        // an existing output is not overwritten without --force
        Run again = run("convert", ckpt.toString(), out.toString());
        assertEquals(2, again.code());
        assertTrue(again.err().contains("already exists"), again.err());
    }

    @Test
    void badInputGetsOneClearLine() throws Exception {
        Path junk = Files.writeString(dir.resolve("junk.ckpt"), "not a checkpoint at all");
        Run r = run("convert", junk.toString(), dir.resolve("out.safetensors").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("neither a zip archive nor a legacy torch file"), r.err());
        assertFalse(Files.exists(dir.resolve("out.safetensors")));
        Run t = run("convert", junk.toString(), dir.resolve("o.safetensors").toString(), "--dtype", "int8");
        assertEquals(2, t.code());
        assertTrue(t.err().contains("--dtype"), t.err());
    }
}
