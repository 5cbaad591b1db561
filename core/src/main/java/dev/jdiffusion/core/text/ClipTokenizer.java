package dev.jdiffusion.core.text;

import dev.jdiffusion.core.json.Json;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPInputStream;

/**
 * OpenAI CLIP's byte-level BPE tokenizer ({@code clip/simple_tokenizer.py}), as Stable Diffusion's
 * text encoders are fed: text repaired (ftfy's fixes, see {@link TextRepair}), HTML references
 * decoded twice, whitespace collapsed, lower-cased; split into words, single digits and punctuation
 * runs; each piece's UTF-8 bytes BPE-merged by rank. Immutable and safe to share between threads.
 */
public final class ClipTokenizer {
    public static final int START_OF_TEXT = 49406;
    public static final int END_OF_TEXT = 49407;
    /** Token sequences the text encoders take: start, 75 tokens, end (and padding). */
    public static final int CONTEXT_LENGTH = 77;
    public static final int MAX_BODY_TOKENS = CONTEXT_LENGTH - 2;
    private static final String SOT = "<|startoftext|>";
    private static final String EOT = "<|endoftext|>";
    private static final String[] CONTRACTIONS = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    private static final String BYTE_CHARS = byteChars();

    /** How the 77-token sequence is padded after the end token. */
    public enum Padding {
        /** With the end token (SD 1.x, SDXL's first encoder: transformers' CLIPTokenizer). */
        END_OF_TEXT,
        /** With 0 (SD 2.x, SDXL's second encoder: open_clip). */
        ZERO
    }

    private final Map<String, Integer> vocab;
    private final Map<String, Integer> ranks;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    private ClipTokenizer(Map<String, Integer> vocab, Map<String, Integer> ranks) {
        this.vocab = vocab;
        this.ranks = ranks;
    }

    /**
     * Loads the tokenizer from a folder holding {@code vocab.json} + {@code merges.txt} (a diffusers
     * {@code tokenizer/} folder, or any copy of CLIP's) or OpenAI's {@code bpe_simple_vocab_16e6.txt.gz}.
     */
    public static ClipTokenizer load(Path folder) throws IOException {
        Path vocab = folder.resolve("vocab.json");
        Path merges = folder.resolve("merges.txt");
        if (Files.isRegularFile(vocab) && Files.isRegularFile(merges)) {
            return fromFiles(vocab, merges);
        }
        Path gz = folder.resolve("bpe_simple_vocab_16e6.txt.gz");
        if (Files.isRegularFile(gz)) {
            return fromOpenAiVocab(gz);
        }
        throw new NoSuchFileException(folder.toString(), null, "no CLIP tokenizer here: it needs vocab.json and merges.txt"
                + " (the tokenizer/ folder of a diffusers model, e.g. of stable-diffusion-v1-5) or OpenAI's"
                + " bpe_simple_vocab_16e6.txt.gz");
    }

    /**
     * The tokenizer for a checkpoint: from {@code folder} when the user names one, otherwise from the
     * usual places next to the checkpoint — a diffusers folder's {@code tokenizer/}, or beside a
     * single file its folder's {@code tokenizer/} or the folder itself. The error lists where it looked.
     */
    public static ClipTokenizer find(Path checkpoint, Path folder) throws IOException {
        List<Path> candidates = new ArrayList<>();
        if (folder != null) {
            candidates.add(folder);
        } else {
            Path dir = Files.isDirectory(checkpoint) ? checkpoint : checkpoint.toAbsolutePath().getParent();
            candidates.add(dir.resolve("tokenizer"));
            candidates.add(dir);
        }
        for (Path c : candidates) {
            if (Files.isRegularFile(c.resolve("vocab.json")) && Files.isRegularFile(c.resolve("merges.txt"))
                    || Files.isRegularFile(c.resolve("bpe_simple_vocab_16e6.txt.gz"))) {
                return load(c);
            }
        }
        throw new NoSuchFileException(candidates.get(0).toString(), null, "no CLIP tokenizer found in " + candidates
                + ": it needs vocab.json and merges.txt (the tokenizer/ folder of a diffusers model, e.g. of"
                + " stable-diffusion-v1-5; put it beside the checkpoint as tokenizer/ or name its folder)"
                + " or OpenAI's bpe_simple_vocab_16e6.txt.gz");
    }

    /** From transformers' {@code vocab.json} (token → id) and {@code merges.txt} ("#version" line, then "A B" by rank). */
    public static ClipTokenizer fromFiles(Path vocabJson, Path mergesTxt) throws IOException {
        Object parsed = Json.parse(Files.readString(vocabJson, StandardCharsets.UTF_8));
        if (!(parsed instanceof Map<?, ?> m)) {
            throw new IOException(vocabJson + ": not a JSON object of token ids");
        }
        Map<String, Integer> vocab = new HashMap<>(m.size() * 2);
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof Long id) || id < 0 || id > Integer.MAX_VALUE) {
                throw new IOException(vocabJson + ": the id of \"" + e.getKey() + "\" is not a non-negative integer");
            }
            vocab.put((String) e.getKey(), id.intValue());
        }
        List<String> lines = Files.readAllLines(mergesTxt, StandardCharsets.UTF_8);
        int start = !lines.isEmpty() && lines.get(0).startsWith("#version") ? 1 : 0;
        return new ClipTokenizer(vocab, ranks(lines.subList(start, lines.size()), mergesTxt));
    }

    /** From OpenAI's {@code bpe_simple_vocab_16e6.txt.gz}: ids built as CLIP builds them. */
    public static ClipTokenizer fromOpenAiVocab(Path gz) throws IOException {
        String text;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(gz))) {
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        String[] lines = text.split("\n", -1);
        int merges = 49152 - 256 - 2;
        if (lines.length < merges + 1) {
            throw new IOException(gz + ": " + (lines.length - 1) + " merge lines, CLIP needs " + merges);
        }
        List<String> mergeLines = Arrays.asList(lines).subList(1, merges + 1);
        Map<String, Integer> vocab = new HashMap<>(100_000);
        int id = 0;
        for (int i = 0; i < 256; i++) {
            vocab.put(String.valueOf(BYTE_CHARS.charAt(tableByte(i))), id++);
        }
        for (int i = 0; i < 256; i++) {
            vocab.put(BYTE_CHARS.charAt(tableByte(i)) + "</w>", id++);
        }
        for (String line : mergeLines) {
            vocab.put(line.replace(" ", ""), id++);
        }
        vocab.put(SOT, id++);
        vocab.put(EOT, id);
        return new ClipTokenizer(vocab, ranks(mergeLines, gz));
    }

    private static Map<String, Integer> ranks(List<String> lines, Path source) throws IOException {
        Map<String, Integer> ranks = new HashMap<>(lines.size() * 2);
        int rank = 0;
        for (String line : lines) {
            if (line.isEmpty()) {
                continue;
            }
            int sp = line.indexOf(' ');
            if (sp <= 0 || sp != line.lastIndexOf(' ') || sp == line.length() - 1) {
                throw new IOException(source + ": merge " + rank + " is not two symbols separated by a space: \"" + line + "\"");
            }
            ranks.putIfAbsent(line, rank++);
        }
        return ranks;
    }

    /** The ids of a prompt: no start/end tokens, not truncated. */
    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        for (String piece : preTokenize(clean(text))) {
            if (piece.equals(SOT)) {
                ids.add(START_OF_TEXT);
            } else if (piece.equals(EOT)) {
                ids.add(END_OF_TEXT);
            } else {
                for (int id : cache.computeIfAbsent(piece, this::bpeIds)) {
                    ids.add(id);
                }
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The 77 ids a text encoder takes: start, the first 75 ids of the prompt, end, padding. */
    public int[] inputIds(String text, Padding padding) {
        return pad(encode(text), padding);
    }

    /** start + the first 75 of {@code ids} + end, padded to 77. */
    public static int[] pad(int[] ids, Padding padding) {
        int[] seq = new int[CONTEXT_LENGTH];
        Arrays.fill(seq, padding == Padding.ZERO ? 0 : END_OF_TEXT);
        seq[0] = START_OF_TEXT;
        int body = Math.min(ids.length, MAX_BODY_TOKENS);
        System.arraycopy(ids, 0, seq, 1, body);
        seq[body + 1] = END_OF_TEXT;
        return seq;
    }

    /** Where the encoders take the pooled output: the first end token of a padded sequence. */
    public static int endIndex(int[] inputIds) {
        for (int i = 0; i < inputIds.length; i++) {
            if (inputIds[i] == END_OF_TEXT) {
                return i;
            }
        }
        throw new IllegalArgumentException("no end-of-text token in the sequence");
    }

    /** ftfy's repairs, HTML references decoded twice, whitespace collapsed and trimmed, lower case. */
    public static String clean(String text) {
        String s = TextRepair.fix(text);
        s = HtmlEntities.unescape(HtmlEntities.unescape(s));
        StringBuilder b = new StringBuilder(s.length());
        boolean space = false;
        for (int i = 0; i < s.length(); ) {
            int c = s.codePointAt(i);
            i += Character.charCount(c);
            if (isWhiteSpace(c)) {
                space = true;
                continue;
            }
            if (space && !b.isEmpty()) {
                b.append(' ');
            }
            space = false;
            b.appendCodePoint(c);
        }
        return b.toString().toLowerCase(Locale.ROOT);
    }

    /** The Unicode White_Space property (what Python's regex \s means here). */
    static boolean isWhiteSpace(int c) {
        return c >= 0x09 && c <= 0x0D || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || c >= 0x2000 && c <= 0x200A
                || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
    }

    /** CLIP's pre-tokenizer: special tokens, contractions, letter runs, single numbers, other runs; spaces skipped. */
    static List<String> preTokenize(String s) {
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < s.length()) {
            int c = s.codePointAt(i);
            if (isWhiteSpace(c)) {
                i += Character.charCount(c);
                continue;
            }
            int end;
            if (s.startsWith(SOT, i)) {
                end = i + SOT.length();
            } else if (s.startsWith(EOT, i)) {
                end = i + EOT.length();
            } else if (contraction(s, i) > 0) {
                end = i + contraction(s, i);
            } else if (Character.isLetter(c)) {
                end = i;
                while (end < s.length() && Character.isLetter(s.codePointAt(end))) {
                    end += Character.charCount(s.codePointAt(end));
                }
            } else if (isNumber(c)) {
                end = i + Character.charCount(c);
            } else {
                end = i;
                while (end < s.length()) {
                    int d = s.codePointAt(end);
                    if (isWhiteSpace(d) || Character.isLetter(d) || isNumber(d)) {
                        break;
                    }
                    end += Character.charCount(d);
                }
            }
            out.add(s.substring(i, end));
            i = end;
        }
        return out;
    }

    private static int contraction(String s, int i) {
        for (String c : CONTRACTIONS) {
            if (s.regionMatches(true, i, c, 0, c.length())) {
                return c.length();
            }
        }
        return 0;
    }

    private static boolean isNumber(int c) {
        int t = Character.getType(c);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }

    /** BPE of one piece: its UTF-8 bytes as byte characters, "</w>" on the last, lowest-rank pairs merged first. */
    private int[] bpeIds(String piece) {
        byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
        List<String> symbols = new ArrayList<>(utf8.length);
        for (byte b : utf8) {
            symbols.add(String.valueOf(BYTE_CHARS.charAt(b & 0xFF)));
        }
        int last = symbols.size() - 1;
        symbols.set(last, symbols.get(last) + "</w>");
        while (symbols.size() > 1) {
            int best = Integer.MAX_VALUE;
            String first = null;
            String second = null;
            for (int k = 0; k + 1 < symbols.size(); k++) {
                Integer r = ranks.get(symbols.get(k) + " " + symbols.get(k + 1));
                if (r != null && r < best) {
                    best = r;
                    first = symbols.get(k);
                    second = symbols.get(k + 1);
                }
            }
            if (first == null) {
                break;
            }
            List<String> merged = new ArrayList<>(symbols.size());
            for (int k = 0; k < symbols.size(); k++) {
                if (k + 1 < symbols.size() && symbols.get(k).equals(first) && symbols.get(k + 1).equals(second)) {
                    merged.add(first + second);
                    k++;
                } else {
                    merged.add(symbols.get(k));
                }
            }
            symbols = merged;
        }
        int[] ids = new int[symbols.size()];
        for (int k = 0; k < ids.length; k++) {
            Integer id = vocab.get(symbols.get(k));
            if (id == null) {
                throw new IllegalStateException("the tokenizer's vocabulary has no entry for \"" + symbols.get(k) + "\"");
            }
            ids[k] = id;
        }
        return ids;
    }

    /** GPT-2's byte → character table: printable bytes as themselves, the others from U+0100 up. */
    private static String byteChars() {
        char[] t = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = b >= 0x21 && b <= 0x7E || b >= 0xA1 && b <= 0xAC || b >= 0xAE;
            t[b] = printable ? (char) b : (char) next++;
        }
        return new String(t);
    }

    /** The byte at position i of CLIP's id order: the 188 printable bytes ascending, then the other 68. */
    private static int tableByte(int i) {
        int seen = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (int b = 0; b < 256; b++) {
                boolean printable = b >= 0x21 && b <= 0x7E || b >= 0xA1 && b <= 0xAC || b >= 0xAE;
                if (printable == (pass == 0) && seen++ == i) {
                    return b;
                }
            }
        }
        throw new IllegalArgumentException("byte position " + i);
    }
}
