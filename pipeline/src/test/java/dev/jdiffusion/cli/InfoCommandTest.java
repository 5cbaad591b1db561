package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

class InfoCommandTest {
    @Test
    void describesACheckpointAndRejectsABrokenOne() {
        Path ckpt = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("ckpt/sd1-tiny.ckpt");
        Assumptions.assumeTrue(Files.exists(ckpt), "no conformance data");
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            code = Main.commandLine().execute("info", ckpt.toString());
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, out);
        assertTrue(out.contains("family       SD1") && out.contains("model.diffusion_model.") && out.contains("tensors"), out);
        StringWriter err = new StringWriter();
        int bad = Main.commandLine().setErr(new PrintWriter(err)).execute("info",
                ckpt.resolveSibling("broken-invalid-json.safetensors").toString());
        assertTrue(bad != 0 && err.toString().contains("broken-invalid-json"), err.toString());
    }
}
