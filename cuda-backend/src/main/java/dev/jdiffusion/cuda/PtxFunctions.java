package dev.jdiffusion.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The kernels a PTX module defines: its {@code .entry} names, in order. */
final class PtxFunctions {
    private static final Pattern ENTRY = Pattern.compile("^\\s*(?:\\.visible\\s+)?\\.entry\\s+([A-Za-z_$][\\w$]*)\\s*\\(",
            Pattern.MULTILINE);

    private PtxFunctions() {
    }

    static List<String> entries(String ptx) {
        List<String> names = new ArrayList<>();
        Matcher m = ENTRY.matcher(ptx);
        while (m.find()) {
            names.add(m.group(1));
        }
        return names;
    }
}
