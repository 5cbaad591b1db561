package dev.jdiffusion.checkpoint.pickle;

import dev.jdiffusion.checkpoint.CheckpointFormatException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A pickle reader (protocols 0–5) that never loads a class and never calls anything named by the
 * file. Globals become {@link Pickle.Global} values; a call (REDUCE, NEWOBJ, INST, OBJ) of a global
 * is handed to a {@link Calls} policy that either builds a known value (an OrderedDict, a tensor
 * reference) or returns an inert {@link Pickle.Opaque}. Globals that only exist to run code
 * ({@code os.system}, {@code builtins.eval}, {@code subprocess.Popen}, …) are refused outright.
 */
public final class SafeUnpickler {
    /** Modules and names whose mere mention in a checkpoint is an attack. */
    private static final Set<String> FORBIDDEN_MODULES = Set.of("os", "posix", "nt", "subprocess", "sys", "shutil",
            "socket", "importlib", "runpy", "pty", "commands", "webbrowser", "ctypes", "multiprocessing", "code",
            "codeop", "pickle", "marshal", "types", "io", "pathlib", "tempfile", "signal", "platform");
    private static final Set<String> FORBIDDEN_BUILTINS = Set.of("eval", "exec", "compile", "open", "__import__",
            "getattr", "setattr", "delattr", "globals", "locals", "vars", "input", "breakpoint", "exit", "quit",
            "memoryview", "help", "apply", "execfile", "file", "reload");
    private static final int MAX_DEPTH = 10_000;
    private static final int MAX_LINE = 1 << 24;
    private static final int MAX_KEY_DEPTH = 32;

    /** Decides what a call of a global produces. Must not execute anything. */
    public interface Calls {
        /** The value of {@code callee(*args)}; {@code args} is a {@link Pickle.Tuple}. */
        Object call(Pickle.Global callee, Pickle.Tuple args) throws CheckpointFormatException;

        /** The value for a persistent id (torch's storages); may refuse. */
        Object persistentLoad(Object pid) throws CheckpointFormatException;
    }

    private final MemorySegment in;
    private final long limit;
    private long pos;
    private final String source;
    private final Calls calls;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();

    private SafeUnpickler(MemorySegment in, long offset, String source, Calls calls) {
        this.in = in;
        this.limit = in.byteSize();
        this.pos = offset;
        this.source = source;
        this.calls = calls;
    }

    /** Reads one pickle from {@code data} starting at {@code offset}; returns the value and the end position. */
    public static Result load(byte[] data, int offset, String source, Calls calls) throws CheckpointFormatException {
        return load(MemorySegment.ofArray(data), offset, source, calls);
    }

    /**
     * Reads one pickle from {@code data} (for example a mapped file) starting at {@code offset};
     * returns the value and the end position.
     */
    public static Result load(MemorySegment data, long offset, String source, Calls calls)
            throws CheckpointFormatException {
        SafeUnpickler u = new SafeUnpickler(data, offset, source, calls);
        Object v = u.run();
        return new Result(v == Pickle.NONE ? null : v, u.pos);
    }

    /** A loaded value and the offset just after its STOP opcode. */
    public record Result(Object value, long end) {
    }

    /** True for globals that only serve to run code; they are refused wherever they appear. */
    public static boolean isForbidden(String module, String name) {
        String root = module.contains(".") ? module.substring(0, module.indexOf('.')) : module;
        if (FORBIDDEN_MODULES.contains(root)) {
            return true;
        }
        return (module.equals("builtins") || module.equals("__builtin__")) && FORBIDDEN_BUILTINS.contains(name);
    }

    private CheckpointFormatException error(String what) {
        return new CheckpointFormatException(source + ": invalid pickle at byte " + pos + ": " + what);
    }

    private int u8() throws CheckpointFormatException {
        if (pos >= limit) {
            throw error("unexpected end of data");
        }
        return in.get(ValueLayout.JAVA_BYTE, pos++) & 0xff;
    }

    private long le(int n) throws CheckpointFormatException {
        if (n > limit - pos) {
            throw error("unexpected end of data");
        }
        long v = 0;
        for (int i = 0; i < n; i++) {
            v |= (long) (in.get(ValueLayout.JAVA_BYTE, pos + i) & 0xff) << (8 * i);
        }
        pos += n;
        return v;
    }

    private byte[] bytes(long n) throws CheckpointFormatException {
        if (n < 0 || n > limit - pos) {
            throw error("length " + n + " runs past the end of the data");
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw error("a single value of " + n + " bytes is too large");
        }
        byte[] b = in.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
        pos += n;
        return b;
    }

    private String line() throws CheckpointFormatException {
        long start = pos;
        while (pos < limit && in.get(ValueLayout.JAVA_BYTE, pos) != '\n') {
            pos++;
            if (pos - start > MAX_LINE) {
                throw error("text line longer than " + MAX_LINE + " bytes");
            }
        }
        if (pos >= limit) {
            throw error("unterminated text line");
        }
        String s = new String(in.asSlice(start, pos - start).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        pos++;
        return s;
    }

    private void push(Object o) throws CheckpointFormatException {
        if (stack.size() > 10_000_000) {
            throw error("stack too deep");
        }
        stack.add(o == null ? Pickle.NONE : o);
    }

    private Object pop() throws CheckpointFormatException {
        if (stack.isEmpty() || (!marks.isEmpty() && stack.size() == marks.get(marks.size() - 1))) {
            throw error("pop from an empty stack");
        }
        return stack.remove(stack.size() - 1);
    }

    private Object top() throws CheckpointFormatException {
        if (stack.isEmpty()) {
            throw error("empty stack");
        }
        return stack.get(stack.size() - 1);
    }

    private List<Object> popMark() throws CheckpointFormatException {
        if (marks.isEmpty()) {
            throw error("no MARK on the stack");
        }
        int m = marks.remove(marks.size() - 1);
        List<Object> items = new ArrayList<>(stack.subList(m, stack.size()));
        stack.subList(m, stack.size()).clear();
        items.replaceAll(v -> v == Pickle.NONE ? null : v);
        return items;
    }

    private static Object unwrap(Object v) {
        return v == Pickle.NONE ? null : v;
    }

    private Pickle.Global global(String module, String name) throws CheckpointFormatException {
        if (isForbidden(module, name)) {
            throw new CheckpointFormatException(source + ": refused: the pickle references " + module + "." + name
                    + ", which can only serve to run code; nothing was executed");
        }
        return new Pickle.Global(module, name);
    }

    private Object call(Object callee, Object args) throws CheckpointFormatException {
        if (!(callee instanceof Pickle.Global g)) {
            throw error("call of a non-global " + Pickle.describe(callee));
        }
        Pickle.Tuple t = args instanceof Pickle.Tuple tu ? tu : new Pickle.Tuple(List.of());
        return calls.call(g, t);
    }

    private Object memoGet(long key) throws CheckpointFormatException {
        Object v = memo.get(key);
        if (v == null && !memo.containsKey(key)) {
            throw error("memo key " + key + " was never stored");
        }
        return v;
    }

    @SuppressWarnings("unchecked")
    private Object run() throws CheckpointFormatException {
        while (true) {
            int op = u8();
            switch (op) {
                case 0x80 -> { // PROTO
                    int p = u8();
                    if (p > 5) {
                        throw error("unsupported pickle protocol " + p);
                    }
                }
                case 0x95 -> le(8); // FRAME: framing is only a hint
                case '.' -> { // STOP
                    return unwrap(pop());
                }
                case '(' -> marks.add(stack.size());
                case '0' -> pop();
                case '1' -> popMark();
                case '2' -> push(unwrap(top()));
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'I' -> {
                    String s = line();
                    switch (s) {
                        case "00" -> push(Boolean.FALSE);
                        case "01" -> push(Boolean.TRUE);
                        default -> push(parseInt(s));
                    }
                }
                case 'J' -> push((long) (int) le(4));
                case 'K' -> push((long) u8());
                case 'M' -> push(le(2));
                case 'L' -> {
                    String s = line();
                    push(parseInt(s.endsWith("L") ? s.substring(0, s.length() - 1) : s));
                }
                case 0x8a -> push(longBytes(bytes(u8())));
                case 0x8b -> push(longBytes(bytes(le(4))));
                case 'F' -> {
                    try {
                        push(Double.parseDouble(line()));
                    } catch (NumberFormatException e) {
                        throw error("bad float");
                    }
                }
                case 'G' -> push(Double.longBitsToDouble(Long.reverseBytes(le(8))));
                case 'S' -> push(pythonStringLiteral(line()));
                case 'T' -> push(new String(bytes(le(4)), StandardCharsets.ISO_8859_1));
                case 'U' -> push(new String(bytes(u8()), StandardCharsets.ISO_8859_1));
                case 'V' -> push(rawUnicode(line()));
                case 'X' -> push(new String(bytes(le(4)), StandardCharsets.UTF_8));
                case 0x8c -> push(new String(bytes(u8()), StandardCharsets.UTF_8));
                case 0x8d -> push(new String(bytes(le(8)), StandardCharsets.UTF_8));
                case 'B' -> push(bytes(le(4)));
                case 'C' -> push(bytes(u8()));
                case 0x8e, 0x96 -> push(bytes(le(8)));
                case ']' -> push(new ArrayList<>());
                case 'l' -> push(new ArrayList<>(popMark()));
                case 'a' -> {
                    Object v = unwrap(pop());
                    appendTo(top(), List.of(v == null ? Pickle.NONE : v));
                }
                case 'e' -> {
                    List<Object> items = popMark();
                    appendTo(top(), items);
                }
                case ')' -> push(new Pickle.Tuple(List.of()));
                case 't' -> push(new Pickle.Tuple(popMark()));
                case 0x85 -> push(tuple(1));
                case 0x86 -> push(tuple(2));
                case 0x87 -> push(tuple(3));
                case '}' -> push(new LinkedHashMap<>());
                case 'd' -> {
                    List<Object> items = popMark();
                    Map<Object, Object> m = new LinkedHashMap<>();
                    putAll(m, items);
                    push(m);
                }
                case 's' -> {
                    Object v = unwrap(pop());
                    Object k = unwrap(pop());
                    setItems(top(), Arrays.asList(k, v));
                }
                case 'u' -> {
                    List<Object> items = popMark();
                    setItems(top(), items);
                }
                case 0x8f -> push(new LinkedHashSet<>());
                case 0x90 -> {
                    List<Object> items = popMark();
                    if (!(top() instanceof Set<?> set)) {
                        throw error("ADDITEMS on a non-set");
                    }
                    for (Object item : items) {
                        checkHashable(item, 0);
                    }
                    ((Set<Object>) set).addAll(items);
                }
                case 0x91 -> {
                    List<Object> items = popMark();
                    for (Object item : items) {
                        checkHashable(item, 0);
                    }
                    push(new LinkedHashSet<>(items));
                }
                case 'c' -> push(global(line(), line()));
                case 0x93 -> {
                    Object name = unwrap(pop());
                    Object module = unwrap(pop());
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw error("STACK_GLOBAL needs two strings");
                    }
                    push(global(m, n));
                }
                case 'i' -> { // INST: module, name, then the arguments since MARK
                    Pickle.Global g = global(line(), line());
                    push(calls.call(g, new Pickle.Tuple(popMark())));
                }
                case 'o' -> { // OBJ: class and arguments since MARK
                    List<Object> items = popMark();
                    if (items.isEmpty()) {
                        throw error("OBJ without a class");
                    }
                    push(call(items.get(0), new Pickle.Tuple(items.subList(1, items.size()))));
                }
                case 'R' -> {
                    Object args = unwrap(pop());
                    Object callee = unwrap(pop());
                    push(call(callee, args));
                }
                case 0x81 -> { // NEWOBJ: cls.__new__(cls, *args), kept inert or built by the policy
                    Object args = unwrap(pop());
                    Object cls = unwrap(pop());
                    push(call(cls, args));
                }
                case 0x92 -> { // NEWOBJ_EX
                    unwrap(pop());
                    Object args = unwrap(pop());
                    Object cls = unwrap(pop());
                    push(call(cls, args));
                }
                case 'b' -> { // BUILD: set state; never calls __setstate__
                    Object state = unwrap(pop());
                    Object target = top();
                    if (target instanceof Pickle.Opaque o) {
                        o.setState(state);
                    }
                }
                case 'P' -> push(calls.persistentLoad(line()));
                case 'Q' -> push(calls.persistentLoad(unwrap(pop())));
                case 'g' -> push(memoGet(parseInt(line()).longValue()));
                case 'h' -> push(memoGet(u8()));
                case 'j' -> push(memoGet(le(4)));
                case 'p' -> memo.put(parseInt(line()).longValue(), top());
                case 'q' -> memo.put((long) u8(), top());
                case 'r' -> memo.put(le(4), top());
                case 0x94 -> memo.put((long) memo.size(), top());
                case 0x82, 0x83, 0x84 -> throw error("extension registry opcodes are not supported");
                case 0x97, 0x98 -> throw error("out-of-band buffers are not supported");
                default -> throw error("unknown opcode 0x" + Integer.toHexString(op));
            }
            if (marks.size() > MAX_DEPTH) {
                throw error("too many nested MARKs");
            }
        }
    }

    private Pickle.Tuple tuple(int n) throws CheckpointFormatException {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) {
            items[i] = unwrap(pop());
        }
        return new Pickle.Tuple(Arrays.asList(items));
    }

    @SuppressWarnings("unchecked")
    private void appendTo(Object target, List<Object> items) throws CheckpointFormatException {
        if (target instanceof List<?> l) {
            for (Object v : items) {
                ((List<Object>) l).add(unwrap(v));
            }
        } else if (!(target instanceof Pickle.Opaque)) {
            throw error("APPEND to a " + (target == null ? "null" : target.getClass().getSimpleName()));
        }
    }

    @SuppressWarnings("unchecked")
    private void setItems(Object target, List<Object> items) throws CheckpointFormatException {
        if (target instanceof Map<?, ?> m) {
            putAll((Map<Object, Object>) m, items);
        } else if (!(target instanceof Pickle.Opaque)) {
            throw error("SETITEM on a " + (target == null ? "null" : target.getClass().getSimpleName()));
        }
    }

    private void putAll(Map<Object, Object> m, List<Object> items) throws CheckpointFormatException {
        if (items.size() % 2 != 0) {
            throw error("odd number of items for a dict");
        }
        for (int i = 0; i < items.size(); i += 2) {
            checkHashable(items.get(i), 0);
            m.put(unwrap(items.get(i)), unwrap(items.get(i + 1)));
        }
    }

    /**
     * Dict keys and set members must be hashable, as in Python: no lists, dicts or sets, and (here)
     * no deeper than {@value #MAX_KEY_DEPTH} nested tuples. This also keeps a self-containing
     * structure from ever being hashed.
     */
    private void checkHashable(Object k, int depth) throws CheckpointFormatException {
        if (k instanceof List<?> || k instanceof Map<?, ?> || k instanceof Set<?>) {
            throw error("unhashable " + Pickle.describe(k) + " used as a dict key or set member");
        }
        if (k instanceof Pickle.Tuple(List<Object> items)) {
            if (depth >= MAX_KEY_DEPTH) {
                throw error("dict key nested deeper than " + MAX_KEY_DEPTH + " tuples");
            }
            for (Object item : items) {
                checkHashable(item, depth + 1);
            }
        }
    }

    private Number parseInt(String s) throws CheckpointFormatException {
        try {
            BigInteger b = new BigInteger(s.trim());
            return b.bitLength() < 64 ? (Number) b.longValue() : b;
        } catch (NumberFormatException e) {
            throw error("bad integer " + s);
        }
    }

    private static Number longBytes(byte[] b) {
        if (b.length == 0) {
            return 0L;
        }
        byte[] be = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            be[i] = b[b.length - 1 - i];
        }
        BigInteger v = new BigInteger(be);
        return v.bitLength() < 64 ? (Number) v.longValue() : v;
    }

    private String pythonStringLiteral(String s) throws CheckpointFormatException {
        if (s.length() < 2 || (s.charAt(0) != '\'' && s.charAt(0) != '"') || s.charAt(s.length() - 1) != s.charAt(0)) {
            throw error("bad STRING literal");
        }
        String body = s.substring(1, s.length() - 1);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < body.length(); i++) {
            char c = body.charAt(i);
            if (c != '\\' || i + 1 >= body.length()) {
                b.append(c);
                continue;
            }
            char e = body.charAt(++i);
            switch (e) {
                case 'n' -> b.append('\n');
                case 't' -> b.append('\t');
                case 'r' -> b.append('\r');
                case 'x' -> {
                    if (i + 2 >= body.length()) {
                        throw error("bad \\x escape");
                    }
                    try {
                        b.append((char) Integer.parseInt(body.substring(i + 1, i + 3), 16));
                    } catch (NumberFormatException ex) {
                        throw error("bad \\x escape");
                    }
                    i += 2;
                }
                default -> b.append(e);
            }
        }
        return b.toString();
    }

    private String rawUnicode(String s) throws CheckpointFormatException {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 5 < s.length() && s.charAt(i + 1) == 'u') {
                try {
                    b.append((char) Integer.parseInt(s.substring(i + 2, i + 6), 16));
                } catch (RuntimeException e) {
                    throw error("bad \\u escape");
                }
                i += 5;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
