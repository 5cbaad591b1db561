package dev.jdiffusion.core.text;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * AUTOMATIC1111's prompt editing and composition, resolved to plain prompts per step before the
 * emphasis syntax is read ({@link PromptParser}):
 * <ul>
 *   <li>{@code [from:to:N]} switches from {@code from} to {@code to} after step N, {@code [to:N]}
 *   adds {@code to} after step N, {@code [from::N]} removes {@code from} after step N. N with a
 *   decimal point is a fraction of the steps ({@code 0.25}), without one a step number; nesting works;</li>
 *   <li>{@code [a|b|c]} alternates between its parts at every step (empty parts allowed);</li>
 *   <li>{@code AND} composes prompts, each with an optional {@code :weight} at its end
 *   ({@code a castle AND a dragon :0.7}), guided together as A1111 does.</li>
 * </ul>
 * Brackets that form none of these stay text (the emphasis parser reads them); a {@code |} outside
 * an alternation makes the whole prompt plain text, as A1111's grammar does.
 *
 * <p>Schedules count as A1111 counts: each entry holds until its {@code endAtStep}, and the entry
 * for the model evaluation with index c (from 0) is the first whose {@code endAtStep >= c}, and the
 * first entry past the last (A1111 counts evaluations, not sampler steps; a second-order sampler
 * evaluates the model about twice per step).
 */
public final class PromptSchedule {
    /** The prompt text that holds up to and including {@code endAtStep}. */
    public record Entry(int endAtStep, String text) {
    }

    /** One prompt of an AND composition: its weight and its schedule. */
    public record Weighted(double weight, List<Entry> schedule) {
        public Weighted {
            schedule = List.copyOf(schedule);
        }
    }

    private static final Pattern AND = Pattern.compile("\\bAND\\b", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern WEIGHT = Pattern.compile("^((?:\\s|.)*?)(?:\\s*:\\s*([-+]?(?:\\d+\\.?|\\d*\\.\\d+)))?\\s*$",
            Pattern.DOTALL);
    private static final Pattern NUMBER = Pattern.compile("\\s*([+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?)\\s*]");

    private PromptSchedule() {
    }

    /** The AND-composed prompts of {@code prompt} with their weights and schedules over {@code steps} steps. */
    public static List<Weighted> composable(String prompt, int steps) {
        List<Weighted> out = new ArrayList<>();
        for (String sub : AND.split(prompt, -1)) {
            Matcher m = WEIGHT.matcher(sub);
            String text = sub;
            double weight = 1;
            if (m.find()) {
                text = m.group(1);
                weight = m.group(2) == null ? 1 : Double.parseDouble(m.group(2));
            }
            out.add(new Weighted(weight, of(text, steps)));
        }
        return out;
    }

    /** The schedule of one prompt (no AND) over {@code steps} steps: at least one entry, the last ending at {@code steps}. */
    public static List<Entry> of(String prompt, int steps) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        Node tree = new Parser(prompt).top();
        if (tree == null) {
            return List.of(new Entry(steps, prompt));
        }
        TreeSet<Integer> ends = new TreeSet<>();
        ends.add(steps);
        tree.collect(steps, ends);
        List<Entry> out = new ArrayList<>();
        for (int end : ends) {
            StringBuilder b = new StringBuilder();
            tree.text(end, steps, b);
            out.add(new Entry(end, b.toString()));
        }
        return out;
    }

    /** The text for the model evaluation with index {@code call} (from 0), counted as A1111 counts. */
    public static String at(List<Entry> schedule, int call) {
        for (Entry e : schedule) {
            if (call <= e.endAtStep()) {
                return e.text();
            }
        }
        return schedule.get(0).text();
    }

    /** A parsed piece of prompt. */
    private sealed interface Node permits Text, Seq, Scheduled, Alternate {
        void collect(int steps, TreeSet<Integer> ends);

        void text(int step, int steps, StringBuilder out);
    }

    private record Text(String s) implements Node {
        @Override
        public void collect(int steps, TreeSet<Integer> ends) {
        }

        @Override
        public void text(int step, int steps, StringBuilder out) {
            out.append(s);
        }
    }

    private record Seq(List<Node> parts) implements Node {
        @Override
        public void collect(int steps, TreeSet<Integer> ends) {
            parts.forEach(p -> p.collect(steps, ends));
        }

        @Override
        public void text(int step, int steps, StringBuilder out) {
            parts.forEach(p -> p.text(step, steps, out));
        }
    }

    /** {@code [before:after:when]}; before is null for {@code [after:when]}. */
    private record Scheduled(Node before, Node after, String when) implements Node {
        /** A number with a decimal point is a fraction of the steps, without one a step; at most {@code steps}. */
        int at(int steps) {
            double v = Double.parseDouble(when);
            return (int) Math.min(steps, when.contains(".") ? v * steps : v);
        }

        @Override
        public void collect(int steps, TreeSet<Integer> ends) {
            int at = at(steps);
            if (at >= 1) {
                ends.add(at);
            }
            if (before != null) {
                before.collect(steps, ends);
            }
            after.collect(steps, ends);
        }

        @Override
        public void text(int step, int steps, StringBuilder out) {
            Node n = step <= at(steps) ? before : after;
            if (n != null) {
                n.text(step, steps, out);
            }
        }
    }

    private record Alternate(List<Node> options) implements Node {
        @Override
        public void collect(int steps, TreeSet<Integer> ends) {
            for (int s = 1; s <= steps; s++) {
                ends.add(s);
            }
            options.forEach(o -> o.collect(steps, ends));
        }

        @Override
        public void text(int step, int steps, StringBuilder out) {
            options.get((step - 1) % options.size()).text(step, steps, out);
        }
    }

    /**
     * A recursive-descent reading of A1111's grammar: plain text is any run of characters other than
     * {@code \ [ ] ( ) : |} and backslash escapes; {@code (p)}, {@code (p:q)} and {@code [p]} are
     * emphasis (kept as text), {@code [p:q:N]}, {@code [q:N]} scheduled, {@code [p|q|…]} alternation.
     * At the top level a bracket or colon that opens nothing is text.
     */
    private static final class Parser {
        private final String s;

        Parser(String s) {
            this.s = s;
        }

        private record Parsed(Node node, int end) {
        }

        /** The whole prompt, or null when A1111's grammar rejects it. */
        Node top() {
            List<Node> parts = new ArrayList<>();
            int i = 0;
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == '(' || c == '[') {
                    Parsed g = group(i);
                    if (g != null) {
                        parts.add(g.node());
                        i = g.end();
                        continue;
                    }
                    parts.add(new Text(String.valueOf(c)));
                    i++;
                } else if (c == ')' || c == ']' || c == ':') {
                    parts.add(new Text(String.valueOf(c)));
                    i++;
                } else {
                    int end = plain(i);
                    if (end == i) {
                        return null; // '|' outside an alternation, or a backslash at the very end
                    }
                    parts.add(new Text(s.substring(i, end)));
                    i = end;
                }
            }
            return new Seq(parts);
        }

        /** Plain text and groups from {@code from} up to the first character no prompt may hold there. */
        private Parsed prompt(int from) {
            List<Node> parts = new ArrayList<>();
            int i = from;
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == '(' || c == '[') {
                    Parsed g = group(i);
                    if (g == null) {
                        break;
                    }
                    parts.add(g.node());
                    i = g.end();
                } else {
                    int end = plain(i);
                    if (end == i) {
                        break;
                    }
                    parts.add(new Text(s.substring(i, end)));
                    i = end;
                }
            }
            return new Parsed(new Seq(parts), i);
        }

        /** The end of the run of plain characters and escapes starting at {@code i}. */
        private int plain(int i) {
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == '\\') {
                    if (i + 1 >= s.length()) {
                        break;
                    }
                    i += 2;
                } else if ("[]():|".indexOf(c) >= 0) {
                    break;
                } else {
                    i++;
                }
            }
            return i;
        }

        private char at(int i) {
            return i < s.length() ? s.charAt(i) : '\0';
        }

        /** The group opening at {@code open} ('(' or '['), or null when none of the grammar's forms fits. */
        private Parsed group(int open) {
            Parsed p = prompt(open + 1);
            char c = at(p.end());
            if (s.charAt(open) == '(') {
                if (c == ')') {
                    return new Parsed(new Seq(List.of(new Text("("), p.node(), new Text(")"))), p.end() + 1);
                }
                if (c == ':') {
                    Parsed q = prompt(p.end() + 1);
                    if (at(q.end()) == ')') {
                        return new Parsed(new Seq(List.of(new Text("("), p.node(), new Text(":"), q.node(), new Text(")"))),
                                q.end() + 1);
                    }
                }
                return null;
            }
            if (c == ']') {
                return new Parsed(new Seq(List.of(new Text("["), p.node(), new Text("]"))), p.end() + 1);
            }
            if (c == '|') {
                List<Node> options = new ArrayList<>(List.of(p.node()));
                int i = p.end();
                while (at(i) == '|') {
                    Parsed q = prompt(i + 1);
                    options.add(q.node());
                    i = q.end();
                }
                return at(i) == ']' ? new Parsed(new Alternate(options), i + 1) : null;
            }
            if (c == ':') {
                Parsed q = prompt(p.end() + 1);
                if (at(q.end()) == ':') {
                    Matcher n = NUMBER.matcher(s).region(q.end() + 1, s.length());
                    if (n.lookingAt()) {
                        return new Parsed(new Scheduled(p.node(), q.node(), n.group(1)), n.end());
                    }
                }
                Matcher n = NUMBER.matcher(s).region(p.end() + 1, s.length());
                if (n.lookingAt()) {
                    return new Parsed(new Scheduled(null, p.node(), n.group(1)), n.end());
                }
            }
            return null;
        }
    }
}
