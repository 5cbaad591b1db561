package dev.jdiffusion.core.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClipTokenizerTest {

    private static Path vocabFolder() {
        Path dir = ClipTokenizerConformanceTest.root().resolve("tokenizer");
        Assumptions.assumeTrue(Files.isRegularFile(dir.resolve("vocab.json")), "no CLIP vocabulary at " + dir);
        return dir;
    }

    @Test
    void openAisGzipVocabularyGivesTheSameIdsAsVocabJsonAndMerges(@TempDir Path tmp) throws IOException {
        Path dir = vocabFolder();
        ClipTokenizer fromJson = ClipTokenizer.fromFiles(dir.resolve("vocab.json"), dir.resolve("merges.txt"));
        Files.copy(dir.resolve("bpe_simple_vocab_16e6.txt.gz"), tmp.resolve("bpe_simple_vocab_16e6.txt.gz"));
        ClipTokenizer fromGz = ClipTokenizer.load(tmp);
        for (String p : List.of("a photo of a cat", "(masterpiece:1.2), best quality, 8k, café crème, 東京 🐱",
                "Supercalifragilisticexpialidocious antidisestablishmentarianism")) {
            assertArrayEquals(fromJson.encode(p), fromGz.encode(p), p);
        }
        assertArrayEquals(new int[] {320, 1125, 539, 320, 2368}, fromGz.encode("a photo of a cat"));
    }

    @Test
    void longPromptsAreCutTo75TokensBetweenStartAndEnd() throws IOException {
        ClipTokenizer t = ClipTokenizer.load(vocabFolder());
        String prompt = "cat ".repeat(100);
        int[] ids = t.encode(prompt);
        assertEquals(100, ids.length);
        int[] sd1 = t.inputIds(prompt, ClipTokenizer.Padding.END_OF_TEXT);
        assertEquals(77, sd1.length);
        assertEquals(ClipTokenizer.START_OF_TEXT, sd1[0]);
        assertEquals(ClipTokenizer.END_OF_TEXT, sd1[76]);
        assertEquals(76, ClipTokenizer.endIndex(sd1));
        int[] empty = t.inputIds("", ClipTokenizer.Padding.ZERO);
        assertEquals(1, ClipTokenizer.endIndex(empty));
        assertEquals(0, empty[2]);
        assertEquals(0, t.encode("   \t\n").length);
    }

    @Test
    void aMissingTokenizerNamesTheFilesItNeedsAndWhereTheyAre(@TempDir Path tmp) throws IOException {
        NoSuchFileException e = assertThrows(NoSuchFileException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("vocab.json") && e.getMessage().contains("merges.txt")
                && e.getMessage().contains("tokenizer/"), e.getMessage());
        Files.writeString(tmp.resolve("vocab.json"), "{\"a\": \"x\"}");
        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\n");
        IOException bad = assertThrows(IOException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(bad.getMessage().contains("\"a\""), bad.getMessage());
        Files.writeString(tmp.resolve("vocab.json"), "{\"a\": 1}");
        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\nabc\n");
        assertTrue(assertThrows(IOException.class, () -> ClipTokenizer.load(tmp)).getMessage().contains("merge 0"));
    }

    @Test
    void theTokenizerIsFoundBesideTheCheckpointOrWhereTheUserSays(@TempDir Path tmp) throws IOException {
        Path vocab = vocabFolder();
        Path model = Files.createDirectories(tmp.resolve("models"));
        Path ckpt = Files.writeString(model.resolve("model.safetensors"), "");
        NoSuchFileException none = assertThrows(NoSuchFileException.class, () -> ClipTokenizer.find(ckpt, null));
        assertTrue(none.getMessage().contains(model.resolve("tokenizer").toString()), none.getMessage());
        Path beside = Files.createDirectories(model.resolve("tokenizer"));
        Files.copy(vocab.resolve("vocab.json"), beside.resolve("vocab.json"));
        Files.copy(vocab.resolve("merges.txt"), beside.resolve("merges.txt"));
        assertArrayEquals(new int[] {320, 2368}, ClipTokenizer.find(ckpt, null).encode("a cat"));
        assertArrayEquals(new int[] {320, 2368}, ClipTokenizer.find(model, null).encode("a cat"), "a diffusers folder");
        assertArrayEquals(new int[] {320, 2368}, ClipTokenizer.find(ckpt, vocab).encode("a cat"));
        assertThrows(NoSuchFileException.class, () -> ClipTokenizer.find(ckpt, tmp));
    }

    @Test
    void htmlReferencesDecodeAsPythonDecodesThem() {
        assertEquals("tom & jerry", HtmlEntities.unescape("tom &amp; jerry"));
        assertEquals("&x <y", HtmlEntities.unescape("&ampx &lt;y"));
        assertEquals("\u2026 \u20ac \uFFFD  &hellip", HtmlEntities.unescape("&hellip; &#128; &#0; &#1; &hellip"));
        assertEquals("\u263a\u263a", HtmlEntities.unescape("&#x263A;&#9786"));
        assertEquals("&nosuchname;", HtmlEntities.unescape("&nosuchname;"));
        assertEquals("\uFFFD", HtmlEntities.unescape("&#99999999999999999999;"));
    }

    @Test
    void textRepairFixesWhatFtfyFixesInPrompts() {
        assertEquals("fine 'quoted' \"x\" fullwidth 1!", TextRepair.fix("\ufb01ne \u2018quoted\u2019 \u201cx\u201d \uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff11\uff01"));
        assertEquals("caf\u00e9 red", TextRepair.fix("cafe\u0301 \u001b[31mred\u001b[0m\u0007"));
        assertEquals("a & b", TextRepair.fix("a &amp;amp; b"));
        assertEquals("<b> &amp; c", TextRepair.fix("<b> &amp; c"), "no HTML decoding in text with '<'");
    }
}
