package dev.jdiffusion.core.text;

import java.text.Normalizer;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The text repairs that the CLIP tokenizer's {@code ftfy.fix_text} makes on prompts (ftfy 6, its
 * default configuration), in ftfy's order, line by line, repeated until nothing changes: HTML entities with their semicolon (only
 * while no line so far contains '&lt;'), terminal escape sequences removed, C1 controls read as
 * Windows-1252, Latin ligatures split, full-width forms narrowed, curly quotes straightened, line
 * breaks unified, control characters removed, NFC. Mojibake repair (re-decoding text that was
 * decoded with the wrong code page) is not attempted.
 */
public final class TextRepair {
    private static final Pattern ENTITY = Pattern.compile("&#?[0-9A-Za-z]{1,24};");
    private static final Pattern ANSI = Pattern.compile("\u001b\\[((?:\\d|;)*)([a-zA-Z])");
    private static final Map<Integer, String> LIGATURES = Map.ofEntries(
            Map.entry(0x0132, "IJ"), Map.entry(0x0133, "ij"), Map.entry(0x0149, "\u02bcn"),
            Map.entry(0x01F1, "DZ"), Map.entry(0x01F2, "Dz"), Map.entry(0x01F3, "dz"),
            Map.entry(0x01C4, "D\u017d"), Map.entry(0x01C5, "D\u017e"), Map.entry(0x01C6, "d\u017e"),
            Map.entry(0x01C7, "LJ"), Map.entry(0x01C8, "Lj"), Map.entry(0x01C9, "lj"),
            Map.entry(0x01CA, "NJ"), Map.entry(0x01CB, "Nj"), Map.entry(0x01CC, "nj"),
            Map.entry(0xFB00, "ff"), Map.entry(0xFB01, "fi"), Map.entry(0xFB02, "fl"), Map.entry(0xFB03, "ffi"),
            Map.entry(0xFB04, "ffl"), Map.entry(0xFB05, "\u017ft"), Map.entry(0xFB06, "st"));

    private TextRepair() {
    }

    /** ftfy's {@code fix_text}, as far as this class implements it. */
    public static String fix(String text) {
        StringBuilder out = new StringBuilder(text.length());
        boolean unescape = true;
        int pos = 0;
        while (pos < text.length()) {
            int br = text.indexOf('\n', pos);
            int end = br < 0 ? text.length() : br + 1;
            String segment = text.substring(pos, end);
            if (segment.indexOf('<') >= 0) {
                unescape = false;
            }
            // ftfy repeats its fixes until the text stops changing (so "&amp;amp;" becomes "&")
            String fixed = segment;
            for (int round = 0; round < 16; round++) {
                String next = fixSegment(fixed, unescape);
                if (next.equals(fixed)) {
                    break;
                }
                fixed = next;
            }
            out.append(fixed);
            pos = end;
        }
        return out.toString();
    }

    private static String fixSegment(String s, boolean unescape) {
        if (unescape) {
            s = unescapeEntities(s);
        }
        s = ANSI.matcher(s).replaceAll("");
        s = map(s, c -> c >= 0x80 && c <= 0x9F ? String.valueOf(HtmlEntities.CP1252_C1.charAt(c - 0x80)) : null);
        s = map(s, LIGATURES::get);
        s = map(s, TextRepair::narrow);
        s = map(s, c -> c == 0x02BC || c >= 0x2018 && c <= 0x201B ? "'" : c >= 0x201C && c <= 0x201F ? "\"" : null);
        StringBuilder b = new StringBuilder(s.length());
        s = s.replace("\r\n", "\n").replaceAll("[\r\u2028\u2029\u0085]", "\n");
        s.codePoints().filter(c -> !isControl(c)).forEach(b::appendCodePoint);
        return Normalizer.normalize(b, Normalizer.Form.NFC);
    }

    /** Every code point through f (null: unchanged). */
    private static String map(String s, java.util.function.IntFunction<String> f) {
        StringBuilder b = new StringBuilder(s.length());
        s.codePoints().forEach(c -> {
            String r = f.apply(c);
            if (r == null) {
                b.appendCodePoint(c);
            } else {
                b.append(r);
            }
        });
        return b.toString();
    }

    /** ftfy's {@code fix_character_width}: the ideographic space and the full/half-width forms to their NFKC form. */
    private static String narrow(int c) {
        if (c == 0x3000) {
            return " ";
        }
        if (c >= 0xFF01 && c <= 0xFFEF) {
            String n = Normalizer.normalize(new String(Character.toChars(c)), Normalizer.Form.NFKC);
            return n.codePointCount(0, n.length()) == 1 ? n : null;
        }
        return null;
    }

    private static boolean isControl(int c) {
        return c <= 0x08 || c == 0x0B || c >= 0x0E && c <= 0x1F || c == 0x7F || c >= 0x206A && c <= 0x206F
                || c == 0xFEFF || c >= 0xFFF9 && c <= 0xFFFC;
    }

    /** ftfy's {@code unescape_html}: only references ending in ';', lower-case names also in upper case. */
    private static String unescapeEntities(String s) {
        if (s.indexOf('&') < 0) {
            return s;
        }
        Matcher m = ENTITY.matcher(s);
        StringBuilder out = new StringBuilder(s.length());
        while (m.find()) {
            String ref = m.group();
            String name = ref.substring(1);
            String r;
            if (name.startsWith("#")) {
                String u = HtmlEntities.unescape(ref);
                r = u.contains(";") ? ref : u;
            } else if (HtmlEntities.NAMED.containsKey(name)) {
                r = HtmlEntities.NAMED.get(name);
            } else {
                String lower = name.toLowerCase(java.util.Locale.ROOT);
                String c = HtmlEntities.NAMED.get(lower);
                r = c != null && !lower.equals(name) && name.equals(name.toUpperCase(java.util.Locale.ROOT))
                        ? c.toUpperCase(java.util.Locale.ROOT) : ref;
            }
            m.appendReplacement(out, Matcher.quoteReplacement(r));
        }
        m.appendTail(out);
        return out.toString();
    }
}
