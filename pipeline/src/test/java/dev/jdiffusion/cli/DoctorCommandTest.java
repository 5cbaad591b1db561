package dev.jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class DoctorCommandTest {

    @Test
    void doctorReportsEverySection() {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            code = new CommandLine(new Main()).execute("doctor", "--quick");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, out);
        for (String section : new String[] {"JDK", "Vector API", "Cores", "FMA peak", "GEMM", "CUDA"}) {
            assertTrue(out.contains(section), "missing " + section + " in:\n" + out);
        }
        assertTrue(out.matches("(?s).*FMA peak\\s+[0-9.]+ GFLOP/s.*"), out);
    }

    @Test
    void unknownCommandFails() {
        int code = new CommandLine(new Main()).setErr(new java.io.PrintWriter(new java.io.StringWriter()))
                .execute("no-such-command");
        assertTrue(code != 0);
    }
}
