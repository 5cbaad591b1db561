package dev.jdiffusion.checkpoint.pickle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.checkpoint.CheckpointFormatException;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SafeUnpicklerTest {
    /** A policy that builds OrderedDicts and keeps everything else inert. */
    static final SafeUnpickler.Calls INERT = new SafeUnpickler.Calls() {
        @Override
        public Object call(Pickle.Global callee, Pickle.Tuple args) {
            if (callee.module().equals("collections") && callee.name().equals("OrderedDict")) {
                return new java.util.LinkedHashMap<>();
            }
            return new Pickle.Opaque(callee, args);
        }

        @Override
        public Object persistentLoad(Object pid) {
            return pid;
        }
    };

    private static byte[] bytes(Object... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object p : parts) {
            if (p instanceof String s) {
                out.writeBytes(s.getBytes(StandardCharsets.ISO_8859_1));
            } else {
                out.write((Integer) p);
            }
        }
        return out.toByteArray();
    }

    @Test
    void readsProtocol2Containers() throws Exception {
        // {'a': [1, 2.5, 'x'], 'b': (True, None), 'c': 2**70}  written with protocol 2 by hand
        byte[] p = bytes(0x80, 2, "}q", 0, "(X", 1, 0, 0, 0, "a", "]q", 1, "(K", 1,
                "G", 0x40, 0x04, 0, 0, 0, 0, 0, 0, "X", 1, 0, 0, 0, "x", "e",
                "X", 1, 0, 0, 0, "b", 0x88, "N", 0x86,
                "X", 1, 0, 0, 0, "c", 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, "u.");
        Object v = SafeUnpickler.load(p, 0, "test", INERT).value();
        Map<?, ?> m = assertInstanceOf(Map.class, v);
        assertEquals(List.of(1L, 2.5, "x"), m.get("a"));
        assertEquals(new Pickle.Tuple(java.util.Arrays.asList(true, null)), m.get("b"));
        assertEquals(java.math.BigInteger.TWO.pow(70), m.get("c"));
    }

    @Test
    void unknownGlobalsStayInert() throws Exception {
        byte[] p = bytes(0x80, 2, "cpytorch_lightning.callbacks\nModelCheckpoint\n)", 0x81, "}X", 1, 0, 0, 0, "k", "K", 7, "sb.");
        Object v = SafeUnpickler.load(p, 0, "test", INERT).value();
        Pickle.Opaque o = assertInstanceOf(Pickle.Opaque.class, v);
        assertEquals("pytorch_lightning.callbacks.ModelCheckpoint", o.callee().toString());
        assertEquals(Map.of("k", 7L), o.state());
    }

    @Test
    void codeRunningGlobalsAreRefusedWhateverTheOpcode() {
        String[] attacks = {
            "cos\nsystem\n(S'echo pwned'\ntR.",        // GLOBAL + REDUCE
            "(S'echo pwned'\nios\nsystem\n.",          // INST
            "cposix\nsystem\n(S'x'\ntR.",              // what Python writes on Linux
            "cbuiltins\neval\n(S'1'\ntR.",
            "csubprocess\nPopen\n(S'x'\ntR.",
        };
        for (String a : attacks) {
            CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
                    () -> SafeUnpickler.load(a.getBytes(StandardCharsets.ISO_8859_1), 0, "evil.ckpt", INERT));
            assertTrue(e.getMessage().contains("evil.ckpt") && e.getMessage().contains("refused"), e.getMessage());
        }
        byte[] stackGlobal = bytes(0x80, 4, 0x8c, 2, "os", 0x8c, 6, "system", 0x93, "(S'x'\ntR.");
        assertThrows(CheckpointFormatException.class, () -> SafeUnpickler.load(stackGlobal, 0, "evil", INERT));
    }

    @Test
    void truncatedAndMalformedInputIsRejected() {
        for (byte[] p : new byte[][] {bytes(0x80, 2, "]"), bytes(0x80, 9), bytes("X", 255, 255, 255, 127), bytes("0."),
            bytes(0xff), bytes("h", 3, ".")}) {
            assertThrows(CheckpointFormatException.class, () -> SafeUnpickler.load(p, 0, "bad", INERT));
        }
    }
}
