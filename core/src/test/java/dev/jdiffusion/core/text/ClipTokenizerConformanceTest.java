package dev.jdiffusion.core.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.json.Json;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case of {@code tokenizer/} in the conformance data (set A and {@code set-b/}): the ids, both
 * padded 77-token sequences and the pooling position, exactly. One line per case.
 */
class ClipTokenizerConformanceTest {

    static Path root() {
        return Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).toAbsolutePath().normalize();
    }

    @TestFactory
    Stream<DynamicTest> everyTokenizerCase() throws IOException {
        Path dir = root().resolve("tokenizer");
        Assumptions.assumeTrue(Files.isDirectory(dir), "no tokenizer conformance data at " + dir + "; skipped");
        List<DynamicTest> tests = new ArrayList<>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path cases : walk.filter(p -> p.getFileName().toString().equals("cases.json")).sorted().toList()) {
                ClipTokenizer tokenizer = ClipTokenizer.load(cases.getParent());
                Map<?, ?> doc = (Map<?, ?>) Json.parse(Files.readString(cases));
                for (Object o : (List<?>) doc.get("cases")) {
                    Map<?, ?> c = (Map<?, ?>) o;
                    String rel = root().relativize(cases.getParent()) + "/" + c.get("name");
                    tests.add(DynamicTest.dynamicTest(rel, () -> run(tokenizer, rel, c)));
                }
            }
        }
        Assumptions.assumeFalse(tests.isEmpty(), "no tokenizer cases under " + dir);
        return tests.stream();
    }

    private static void run(ClipTokenizer tokenizer, String rel, Map<?, ?> c) {
        String text = (String) (c.containsKey("prompt") ? c.get("prompt") : c.get("text"));
        int[] want = ints(c.get("ids"));
        int[] sd1 = ints(c.containsKey("sd1_input_ids") ? c.get("sd1_input_ids") : c.get("input_ids_sd1"));
        int[] sd2 = ints(c.containsKey("sd2_input_ids") ? c.get("sd2_input_ids") : c.get("input_ids_sd2"));
        int[] got = tokenizer.encode(text);
        int[] got1 = ClipTokenizer.pad(got, ClipTokenizer.Padding.END_OF_TEXT);
        int[] got2 = ClipTokenizer.pad(got, ClipTokenizer.Padding.ZERO);
        int mismatches = mismatches(got, want) + mismatches(got1, sd1) + mismatches(got2, sd2);
        boolean eotOk = !c.containsKey("eot_index") || ClipTokenizer.endIndex(got1) == ((Long) c.get("eot_index")).intValue();
        boolean pass = mismatches == 0 && eotOk;
        System.out.printf("conformance %s %s mismatched_ids=%d%n", rel, pass ? "PASS" : "FAIL", mismatches);
        String cleaned = (String) (c.containsKey("cleaned_text") ? c.get("cleaned_text") : c.get("cleaned"));
        assertTrue(cleaned == null || cleaned.equals(ClipTokenizer.clean(text)),
                rel + ": cleaned to \"" + ClipTokenizer.clean(text) + "\", expected \"" + cleaned + "\"");
        assertArrayEquals(want, got, rel + ": ids " + Arrays.toString(got));
        assertArrayEquals(sd1, got1, rel + ": SD 1.x input ids");
        assertArrayEquals(sd2, got2, rel + ": SD 2.x input ids");
        assertTrue(eotOk, rel + ": pooling position");
    }

    private static int mismatches(int[] got, int[] want) {
        int n = Math.abs(got.length - want.length);
        for (int i = 0; i < Math.min(got.length, want.length); i++) {
            n += got[i] == want[i] ? 0 : 1;
        }
        return n;
    }

    private static int[] ints(Object list) {
        return ((List<?>) list).stream().mapToInt(v -> ((Long) v).intValue()).toArray();
    }
}
