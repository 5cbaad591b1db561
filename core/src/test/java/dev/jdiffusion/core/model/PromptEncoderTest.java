package dev.jdiffusion.core.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.core.text.ClipTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class PromptEncoderTest {
    private static final int D = 8;
    private static CpuBackend cpu;
    private static ClipTokenizer tokenizer;
    private static ClipTextEncoder encoder;

    @BeforeAll
    static void setUp() throws IOException {
        Path dir = Paths.get(System.getProperty("conformance.dir", "../shared/conformance")).resolve("tokenizer");
        Assumptions.assumeTrue(Files.isRegularFile(dir.resolve("vocab.json")), "no CLIP vocabulary at " + dir);
        tokenizer = ClipTokenizer.load(dir);
        cpu = new CpuBackend(1);
        encoder = ClipTextEncoder.load(cpu, ClipTextEncoderTest.weights(), ClipTextEncoderTest.P, 2,
                ClipTextEncoder.Activation.QUICK_GELU);
    }

    @AfterAll
    static void tearDown() {
        if (cpu != null) {
            cpu.close();
        }
    }

    private static float[] plain(String text) {
        int[] ids = tokenizer.inputIds(text, ClipTokenizer.Padding.END_OF_TEXT);
        return encoder.encode(new int[][] {ids}).lastHiddenState().toFloatArray();
    }

    private static float[] encoded(String prompt, PromptEncoder.Emphasis e) {
        return new PromptEncoder(cpu, tokenizer, encoder, ClipTokenizer.Padding.END_OF_TEXT).encode(prompt, 1, e).context()
                .toFloatArray();
    }

    private static double mean(float[] v) {
        return Arrays.stream(toDouble(v)).average().orElseThrow();
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    @Test
    void withoutEmphasisEveryModeIsThePlainEncoding() {
        float[] want = plain("a photo of a cat");
        for (PromptEncoder.Emphasis e : PromptEncoder.Emphasis.values()) {
            assertArrayEquals(want, encoded("a photo of a cat", e), e.toString());
        }
    }

    @Test
    void emphasisScalesTheWeightedTokenAsEachModeSays() {
        float[] z = plain("a cat");
        float[] noNorm = encoded("a (cat:1.5)", PromptEncoder.Emphasis.NO_NORM);
        float[] original = encoded("a (cat:1.5)", PromptEncoder.Emphasis.ORIGINAL);
        float[] relative = encoded("a (cat:1.5)", PromptEncoder.Emphasis.RELATIVE_TO_EMPTY);
        float[] empty = plain("");
        int cat = 2 * D; // position 2 (start, "a", "cat")
        for (int i = 0; i < z.length; i++) {
            boolean weighted = i >= cat && i < cat + D;
            assertEquals(weighted ? z[i] * 1.5f : z[i], noNorm[i], 1e-6f, "no norm at " + i);
            assertEquals(weighted ? (z[i] - empty[i]) * 1.5f + empty[i] : z[i], relative[i], 1e-5f, "relative at " + i);
        }
        // "Original" is the no-norm result rescaled to the unweighted mean
        assertEquals(mean(z), mean(original), 1e-6);
        double ratio = original[0] / noNorm[0];
        for (int i = 0; i < z.length; i++) {
            assertEquals(noNorm[i] * ratio, original[i], 1e-5, "original at " + i);
        }
    }

    @Test
    void longPromptsBecomeSeveralChunksAndNoneKeepsTheSyntaxAsText() {
        PromptEncoder pe = new PromptEncoder(cpu, tokenizer, encoder, ClipTokenizer.Padding.END_OF_TEXT);
        PromptEncoder.Encoded e = pe.encode("cat ".repeat(80), 1, PromptEncoder.Emphasis.ORIGINAL);
        assertArrayEquals(new int[] {1, 154, D}, e.context().shape());
        assertEquals(80, e.tokenCount());
        assertArrayEquals(new int[] {1, D}, e.pooled().shape());
        Tensor twoChunks = pe.encode("a BREAK cat", 1, PromptEncoder.Emphasis.ORIGINAL).context();
        assertEquals(154, twoChunks.shape()[1]);
        assertEquals(77, pe.encode("a BREAK cat", 1, PromptEncoder.Emphasis.NONE).context().shape()[1]);
        assertFalse(Arrays.equals(plain("a cat"), encoded("a (cat)", PromptEncoder.Emphasis.NONE)));
    }
}
