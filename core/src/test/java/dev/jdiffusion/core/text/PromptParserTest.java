package dev.jdiffusion.core.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class PromptParserTest {

    private static void parses(String prompt, Object... textWeightPairs) {
        List<PromptParser.Weighted> got = PromptParser.parseAttention(prompt);
        assertEquals(textWeightPairs.length / 2, got.size(), prompt + " -> " + got);
        for (int i = 0; i < got.size(); i++) {
            assertEquals(textWeightPairs[2 * i], got.get(i).text(), prompt + " -> " + got);
            assertEquals((Double) textWeightPairs[2 * i + 1], got.get(i).weight(), 1e-12, prompt + " -> " + got);
        }
    }

    /** The examples A1111 documents for its parse_prompt_attention. */
    @Test
    void emphasisIsParsedAsA1111ParsesIt() {
        parses("normal text", "normal text", 1.0);
        parses("an (important) word", "an ", 1.0, "important", 1.1, " word", 1.0);
        parses("(unbalanced", "unbalanced", 1.1);
        parses("\\(literal\\]", "(literal]", 1.0);
        parses("(unnecessary)(parens)", "unnecessaryparens", 1.1);
        parses("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", "a ", 1.0, "house", 1.3 * 1.1 * 1.1, " ", 1.1,
                "on", 1.0, " a ", 1.1, "hill", 0.55, ", sun, ", 1.1, "sky", 1.1 * 1.1 * 1.1 * 1.1, ".", 1.1);
        parses("[[faded]]", "faded", 1 / 1.1 / 1.1);
        parses("", "", 1.0);
        parses("a BREAK b", "a", 1.0, "BREAK", -1.0, "b", 1.0);
        assertTrue(PromptParser.parseAttention("a BREAK b").get(1).isBreak());
        parses("BREAKFAST", "BREAKFAST", 1.0);
        assertThrows(IllegalArgumentException.class, () -> PromptParser.parseAttention("(a:1.2.3)"));
    }

    private static ClipTokenizer tokenizer() throws IOException {
        Path dir = ClipTokenizerConformanceTest.root().resolve("tokenizer");
        Assumptions.assumeTrue(Files.isRegularFile(dir.resolve("vocab.json")), "no CLIP vocabulary at " + dir);
        return ClipTokenizer.load(dir);
    }

    @Test
    void chunksCarryTheEmphasisOfEachTokenAndBreakStartsANewChunk() throws IOException {
        ClipTokenizer t = tokenizer();
        PromptParser.Chunks c = PromptParser.chunks(t, "a (cat:1.5) BREAK a dog", PromptParser.COMMA_BACKTRACK);
        assertEquals(2, c.chunks().size());
        int[] first = c.chunks().get(0).tokens();
        assertEquals(ClipTokenizer.START_OF_TEXT, first[0]);
        assertEquals(320, first[1]);
        assertEquals(2368, first[2]);
        assertEquals(ClipTokenizer.END_OF_TEXT, first[3]);
        assertEquals(1.5, c.chunks().get(0).multipliers()[2]);
        assertEquals(1.0, c.chunks().get(0).multipliers()[1]);
        assertEquals(75 + 2, c.tokenCount(), "a BREAK counts the whole chunk, as A1111's counter does");
        assertEquals(1, PromptParser.chunks(t, "", 20).chunks().size());
        assertEquals(0, PromptParser.chunks(t, "", 20).tokenCount());
    }

    @Test
    void longPromptsAreSplitInto75TokenChunksPreferablyAfterAComma() throws IOException {
        ClipTokenizer t = tokenizer();
        // 70 tokens, a comma, then 10 more: the chunk is cut after the comma (71 tokens) instead of at 75
        String prompt = "cat ".repeat(70) + ", " + "dog ".repeat(10);
        PromptParser.Chunks withBacktrack = PromptParser.chunks(t, prompt, PromptParser.COMMA_BACKTRACK);
        assertEquals(2, withBacktrack.chunks().size());
        int[] first = withBacktrack.chunks().get(0).tokens();
        assertEquals(t.encode(",")[0], first[71]);
        assertEquals(ClipTokenizer.END_OF_TEXT, first[72]);
        assertEquals(t.encode("dog")[0], withBacktrack.chunks().get(1).tokens()[1]);
        PromptParser.Chunks plain = PromptParser.chunks(t, prompt, 0);
        assertEquals(t.encode("dog")[0], plain.chunks().get(0).tokens()[75], "without the rule the chunk is full");
        assertEquals(75 + 6, plain.tokenCount());
        assertEquals(3, PromptParser.chunks(t, "cat ".repeat(151), 20).chunks().size());
    }
}
