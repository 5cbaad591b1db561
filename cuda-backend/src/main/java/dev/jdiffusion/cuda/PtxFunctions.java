package dev.jdiffusion.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The kernels a PTX module defines and their parameter lists, read from its {@code .entry}
 * declarations, and the check that a launch's Java arguments fit them (a wrong width would reach the
 * GPU as garbage, not as an error).
 */
final class PtxFunctions {
    private static final Pattern ENTRY = Pattern.compile("^\\s*(?:\\.visible\\s+)?\\.entry\\s+([A-Za-z_$][\\w$]*)\\s*\\(([^)]*)\\)",
            Pattern.MULTILINE);
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+(?:\\.align\\s+\\d+\\s+)?\\.(\\w+)\\s+[\\w$]+(?:\\[(\\d+)])?");

    /** One parameter: its PTX type ({@code u64}, {@code u32}, {@code f32}, {@code b8}, …) and, for arrays, the byte count. */
    record Param(String type, int bytes) {
    }

    private PtxFunctions() {
    }

    static List<String> entries(String ptx) {
        return new ArrayList<>(signatures(ptx).keySet());
    }

    static Map<String, List<Param>> signatures(String ptx) {
        Map<String, List<Param>> out = new LinkedHashMap<>();
        Matcher m = ENTRY.matcher(ptx);
        while (m.find()) {
            List<Param> params = new ArrayList<>();
            Matcher p = PARAM.matcher(m.group(2));
            while (p.find()) {
                String type = p.group(1);
                int bytes = p.group(2) != null ? Integer.parseInt(p.group(2)) : Integer.parseInt(type.substring(1)) / 8;
                params.add(new Param(type, bytes));
            }
            out.put(m.group(1), params);
        }
        return out;
    }

    /** Throws when the arguments do not match the parameters in number, width or kind. */
    static void check(String kernel, List<Param> params, Object... args) {
        if (params.size() != args.length) {
            throw new IllegalArgumentException(kernel + " takes " + params.size() + " arguments, got " + args.length);
        }
        for (int i = 0; i < args.length; i++) {
            Param p = params.get(i);
            boolean ok = switch (args[i]) {
                case Device.Address a -> p.type().equals("u64");
                case Long v -> p.bytes() == 8 && !p.type().startsWith("f");
                case Integer v -> p.bytes() == 4 && !p.type().startsWith("f");
                case Float v -> p.type().equals("f32");
                case long[] struct -> p.type().equals("b8") && p.bytes() == 8 * struct.length;
                default -> false;
            };
            if (!ok) {
                throw new IllegalArgumentException(kernel + " argument " + i + ": " + describe(args[i]) + " for ." + p.type()
                        + " (" + p.bytes() + " bytes)");
            }
        }
    }

    private static String describe(Object arg) {
        return arg instanceof long[] s ? "struct of " + s.length + " longs" : arg.getClass().getSimpleName();
    }
}
