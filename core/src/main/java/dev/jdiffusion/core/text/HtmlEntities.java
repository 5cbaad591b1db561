package dev.jdiffusion.core.text;

import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * HTML character references decoded the way Python's {@code html.unescape} decodes them (the CLIP
 * tokenizer runs it twice on every prompt): numeric references with or without the semicolon (C1
 * code points read as Windows-1252, invalid ones replaced or dropped as the HTML5 rules say), named
 * references of HTML 4 plus {@code &apos;} with the semicolon, and the legacy names that HTML5 also
 * accepts without it ({@code &amp}, {@code &copy}, …; the longest such prefix wins).
 */
public final class HtmlEntities {
    private static final Pattern CHARREF = Pattern.compile("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)");
    /** Windows-1252 meanings of the C1 range, for references and for ftfy's C1 repair. */
    static final String CP1252_C1 = "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d"
            + "\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";
    private static final String[] LATIN1 = ("nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg "
            + "macr deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave "
            + "Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde "
            + "Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute "
            + "acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve "
            + "oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml").split(" ");
    private static final String OTHERS = "quot 34 amp 38 apos 39 lt 60 gt 62 OElig 338 oelig 339 Scaron 352 scaron 353 "
            + "Yuml 376 fnof 402 circ 710 tilde 732 Alpha 913 Beta 914 Gamma 915 Delta 916 Epsilon 917 Zeta 918 Eta 919 "
            + "Theta 920 Iota 921 Kappa 922 Lambda 923 Mu 924 Nu 925 Xi 926 Omicron 927 Pi 928 Rho 929 Sigma 931 Tau 932 "
            + "Upsilon 933 Phi 934 Chi 935 Psi 936 Omega 937 alpha 945 beta 946 gamma 947 delta 948 epsilon 949 zeta 950 "
            + "eta 951 theta 952 iota 953 kappa 954 lambda 955 mu 956 nu 957 xi 958 omicron 959 pi 960 rho 961 sigmaf 962 "
            + "sigma 963 tau 964 upsilon 965 phi 966 chi 967 psi 968 omega 969 thetasym 977 upsih 978 piv 982 ensp 8194 "
            + "emsp 8195 thinsp 8201 zwnj 8204 zwj 8205 lrm 8206 rlm 8207 ndash 8211 mdash 8212 lsquo 8216 rsquo 8217 "
            + "sbquo 8218 ldquo 8220 rdquo 8221 bdquo 8222 dagger 8224 Dagger 8225 bull 8226 hellip 8230 permil 8240 "
            + "prime 8242 Prime 8243 lsaquo 8249 rsaquo 8250 oline 8254 frasl 8260 euro 8364 image 8465 weierp 8472 "
            + "real 8476 trade 8482 alefsym 8501 larr 8592 uarr 8593 rarr 8594 darr 8595 harr 8596 crarr 8629 lArr 8656 "
            + "uArr 8657 rArr 8658 dArr 8659 hArr 8660 forall 8704 part 8706 exist 8707 empty 8709 nabla 8711 isin 8712 "
            + "notin 8713 ni 8715 prod 8719 sum 8721 minus 8722 lowast 8727 radic 8730 prop 8733 infin 8734 ang 8736 "
            + "and 8743 or 8744 cap 8745 cup 8746 int 8747 there4 8756 sim 8764 cong 8773 asymp 8776 ne 8800 equiv 8801 "
            + "le 8804 ge 8805 sub 8834 sup 8835 nsub 8836 sube 8838 supe 8839 oplus 8853 otimes 8855 perp 8869 sdot 8901 "
            + "lceil 8968 rceil 8969 lfloor 8970 rfloor 8971 lang 10216 rang 10217 loz 9674 spades 9824 clubs 9827 "
            + "hearts 9829 diams 9830";
    /** Names with their semicolon ("amp;") and the legacy ones HTML5 also accepts without it ("amp"). */
    static final Map<String, String> NAMED = build();

    private HtmlEntities() {
    }

    private static Map<String, String> build() {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < LATIN1.length; i++) {
            String c = String.valueOf((char) (0xA0 + i));
            m.put(LATIN1[i] + ";", c);
            m.put(LATIN1[i], c);
        }
        String[] f = OTHERS.split(" ");
        for (int i = 0; i < f.length; i += 2) {
            m.put(f[i] + ";", new String(Character.toChars(Integer.parseInt(f[i + 1]))));
        }
        for (String legacy : new String[] {"quot", "amp", "lt", "gt"}) {
            m.put(legacy, m.get(legacy + ";"));
        }
        for (String upper : new String[] {"AMP", "COPY", "GT", "LT", "QUOT", "REG"}) {
            String c = m.get(upper.toLowerCase(java.util.Locale.ROOT) + ";");
            m.put(upper, c);
            m.put(upper + ";", c);
        }
        return Map.copyOf(m);
    }

    /** Python's {@code html.unescape}. */
    public static String unescape(String s) {
        if (s.indexOf('&') < 0) {
            return s;
        }
        Matcher m = CHARREF.matcher(s);
        StringBuilder out = new StringBuilder(s.length());
        while (m.find()) {
            m.appendReplacement(out, Matcher.quoteReplacement(replace(m.group(1))));
        }
        m.appendTail(out);
        return out.toString();
    }

    private static String replace(String s) {
        if (s.charAt(0) == '#') {
            boolean hex = s.length() > 1 && (s.charAt(1) == 'x' || s.charAt(1) == 'X');
            String digits = s.substring(hex ? 2 : 1);
            if (digits.endsWith(";")) {
                digits = digits.substring(0, digits.length() - 1);
            }
            return numeric(new java.math.BigInteger(digits, hex ? 16 : 10));
        }
        String direct = NAMED.get(s);
        if (direct != null) {
            return direct;
        }
        for (int x = s.length() - 1; x > 1; x--) {
            String prefix = NAMED.get(s.substring(0, x));
            if (prefix != null && !s.substring(0, x).endsWith(";")) {
                return prefix + s.substring(x);
            }
        }
        return "&" + s;
    }

    /** A numeric reference, with HTML5's repairs: C1 as Windows-1252, 0/surrogates/beyond Unicode as U+FFFD, others dropped. */
    static String numeric(java.math.BigInteger value) {
        if (value.bitLength() > 31 || value.intValue() > 0x10FFFF) {
            return "\uFFFD";
        }
        int n = value.intValue();
        if (n == 0) {
            return "\uFFFD";
        }
        if (n == 0x0D) {
            return "\r";
        }
        if (n >= 0x80 && n <= 0x9F) {
            return String.valueOf(CP1252_C1.charAt(n - 0x80));
        }
        if (n >= 0xD800 && n <= 0xDFFF) {
            return "\uFFFD";
        }
        boolean invalid = n >= 0x1 && n <= 0x8 || n == 0xB || n >= 0xE && n <= 0x1F || n >= 0x7F && n <= 0x9F
                || n >= 0xFDD0 && n <= 0xFDEF || (n & 0xFFFE) == 0xFFFE;
        return invalid ? "" : new String(Character.toChars(n));
    }
}
