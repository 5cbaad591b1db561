package dev.jdiffusion.core.text;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * AUTOMATIC1111's prompt syntax: emphasis — {@code (word)} ×1.1, {@code [word]} ÷1.1, nested
 * brackets multiply, {@code (word:1.3)} sets the factor, {@code \(} and {@code \)} are literal,
 * unclosed brackets apply to the end — {@code BREAK} to start a new 75-token chunk, and A1111's
 * chunking of long prompts: 75 tokens per chunk, each wrapped in start/end tokens, a chunk that
 * would end within 20 tokens after a comma broken after that comma instead.
 */
public final class PromptParser {
    /** A piece of prompt text and its emphasis; {@link #isBreak()} marks a BREAK. */
    public record Weighted(String text, double weight) {
        public boolean isBreak() {
            return weight == -1 && text.equals("BREAK");
        }
    }

    /** One 77-token chunk: the ids and the emphasis of each position (1 for start, end and padding). */
    public record Chunk(int[] tokens, double[] multipliers) {
    }

    /** All chunks of a prompt and the number of prompt tokens (A1111's "75/150" counter). */
    public record Chunks(List<Chunk> chunks, int tokenCount) {
    }

    /** A1111's default for how far back a chunk may be cut at a comma ("comma_padding_backtrack"). */
    public static final int COMMA_BACKTRACK = 20;
    private static final Pattern ATTENTION = Pattern.compile(
            "\\\\\\(|\\\\\\)|\\\\\\[|\\\\]|\\\\\\\\|\\\\|\\(|\\[|:\\s*([+-]?[.\\d]+)\\s*\\)|\\)|]|[^\\\\()\\[\\]:]+|:",
            Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern BREAK = Pattern.compile("\\s*\\bBREAK\\b\\s*", Pattern.DOTALL | Pattern.UNICODE_CHARACTER_CLASS);
    private static final double ROUND = 1.1;
    private static final double SQUARE = 1 / 1.1;

    private PromptParser() {
    }

    /** The prompt as pieces of text with their emphasis (A1111's {@code parse_prompt_attention}). */
    public static List<Weighted> parseAttention(String prompt) {
        List<String> texts = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        List<Integer> round = new ArrayList<>();
        List<Integer> square = new ArrayList<>();
        Matcher m = ATTENTION.matcher(prompt);
        while (m.find()) {
            String t = m.group();
            String weight = m.group(1);
            if (t.startsWith("\\")) {
                texts.add(t.substring(1));
                weights.add(1.0);
            } else if (t.equals("(")) {
                round.add(texts.size());
            } else if (t.equals("[")) {
                square.add(texts.size());
            } else if (weight != null && !round.isEmpty()) {
                multiply(weights, round.remove(round.size() - 1), parseWeight(weight));
            } else if (t.equals(")") && !round.isEmpty()) {
                multiply(weights, round.remove(round.size() - 1), ROUND);
            } else if (t.equals("]") && !square.isEmpty()) {
                multiply(weights, square.remove(square.size() - 1), SQUARE);
            } else {
                String[] parts = BREAK.split(t, -1);
                for (int i = 0; i < parts.length; i++) {
                    if (i > 0) {
                        texts.add("BREAK");
                        weights.add(-1.0);
                    }
                    texts.add(parts[i]);
                    weights.add(1.0);
                }
            }
        }
        for (int pos : round) {
            multiply(weights, pos, ROUND);
        }
        for (int pos : square) {
            multiply(weights, pos, SQUARE);
        }
        if (texts.isEmpty()) {
            texts.add("");
            weights.add(1.0);
        }
        List<Weighted> out = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            Weighted last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.weight() == weights.get(i)) {
                out.set(out.size() - 1, new Weighted(last.text() + texts.get(i), last.weight()));
            } else {
                out.add(new Weighted(texts.get(i), weights.get(i)));
            }
        }
        return out;
    }

    private static double parseWeight(String w) {
        try {
            return Double.parseDouble(w);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("prompt emphasis \"" + w + "\" is not a number");
        }
    }

    private static void multiply(List<Double> weights, int from, double factor) {
        for (int i = from; i < weights.size(); i++) {
            weights.set(i, weights.get(i) * factor);
        }
    }

    /**
     * The prompt's 77-token chunks with per-token emphasis, as A1111 feeds its text encoder (with
     * emphasis parsing on; {@code commaBacktrack} 0 turns the comma rule off).
     */
    public static Chunks chunks(ClipTokenizer tokenizer, String prompt, int commaBacktrack) {
        return chunks(tokenizer, parseAttention(prompt), commaBacktrack);
    }

    /** The chunks of already parsed pieces (e.g. one unparsed piece of weight 1, A1111's emphasis "None"). */
    public static Chunks chunks(ClipTokenizer tokenizer, List<Weighted> pieces, int commaBacktrack) {
        int comma = tokenizer.encode(",")[0];
        int body = ClipTokenizer.MAX_BODY_TOKENS;
        List<Chunk> chunks = new ArrayList<>();
        List<Integer> tokens = new ArrayList<>();
        List<Double> mults = new ArrayList<>();
        int[] count = {0};
        int lastComma = -1;
        for (Weighted w : pieces) {
            if (w.isBreak()) {
                close(chunks, tokens, mults, count, false);
                lastComma = -1;
                continue;
            }
            for (int token : tokenizer.encode(w.text())) {
                if (token == comma) {
                    lastComma = tokens.size();
                } else if (commaBacktrack != 0 && tokens.size() == body && lastComma != -1
                        && tokens.size() - lastComma <= commaBacktrack) {
                    int cut = lastComma + 1;
                    List<Integer> movedTokens = new ArrayList<>(tokens.subList(cut, tokens.size()));
                    List<Double> movedMults = new ArrayList<>(mults.subList(cut, mults.size()));
                    tokens.subList(cut, tokens.size()).clear();
                    mults.subList(cut, mults.size()).clear();
                    close(chunks, tokens, mults, count, false);
                    tokens.addAll(movedTokens);
                    mults.addAll(movedMults);
                    lastComma = -1;
                }
                if (tokens.size() == body) {
                    close(chunks, tokens, mults, count, false);
                    lastComma = -1;
                }
                tokens.add(token);
                mults.add(w.weight());
            }
        }
        if (!tokens.isEmpty() || chunks.isEmpty()) {
            close(chunks, tokens, mults, count, true);
        }
        return new Chunks(List.copyOf(chunks), count[0]);
    }

    private static void close(List<Chunk> chunks, List<Integer> tokens, List<Double> mults, int[] count, boolean last) {
        int body = ClipTokenizer.MAX_BODY_TOKENS;
        count[0] += last ? tokens.size() : body;
        int[] t = new int[ClipTokenizer.CONTEXT_LENGTH];
        double[] w = new double[ClipTokenizer.CONTEXT_LENGTH];
        Arrays.fill(t, ClipTokenizer.END_OF_TEXT);
        Arrays.fill(w, 1.0);
        t[0] = ClipTokenizer.START_OF_TEXT;
        for (int i = 0; i < tokens.size(); i++) {
            t[i + 1] = tokens.get(i);
            w[i + 1] = mults.get(i);
        }
        chunks.add(new Chunk(t, w));
        tokens.clear();
        mults.clear();
    }
}
