package dev.jdiffusion.checkpoint.pickle;

import java.util.List;

/** The inert values a {@link SafeUnpickler} builds for what Python would have imported or called. */
public final class Pickle {
    private Pickle() {
    }

    /** A Python tuple. */
    public record Tuple(List<Object> items) {
    }

    /** A global reference ({@code module.name}) that is never imported. */
    public record Global(String module, String name) {
        @Override
        public String toString() {
            return module + "." + name;
        }
    }

    /**
     * What a call of a global that the reader does not know would have produced: the callee and
     * its arguments, kept as data. Nothing was called. {@code state} holds what BUILD would have set.
     */
    public static final class Opaque {
        private final Global callee;
        private final Object args;
        private Object state;

        Opaque(Global callee, Object args) {
            this.callee = callee;
            this.args = args;
        }

        /** The inert stand-in for {@code callee(*args)}; a {@link SafeUnpickler.Calls} policy returns it for what it does not know. */
        public static Opaque of(Global callee, Tuple args) {
            return new Opaque(callee, args);
        }

        public Global callee() {
            return callee;
        }

        public Object args() {
            return args;
        }

        public Object state() {
            return state;
        }

        void setState(Object s) {
            state = s;
        }

        @Override
        public String toString() {
            return "<inert " + callee + ">";
        }
    }

    /**
     * A short description of an unpickled value for messages: its Python type, and the value
     * itself only for scalars. Never recurses, so self-containing structures are safe to describe.
     */
    public static String describe(Object v) {
        if (v == null || v == NONE) {
            return "None";
        }
        if (v instanceof String s) {
            return "str '" + (s.length() > 40 ? s.substring(0, 40) + "…" : s) + "'";
        }
        if (v instanceof Number || v instanceof Boolean || v instanceof Global) {
            return v.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT) + " " + v;
        }
        if (v instanceof Tuple t) {
            return "tuple of " + t.items().size();
        }
        if (v instanceof List<?> l) {
            return "list of " + l.size();
        }
        if (v instanceof java.util.Map<?, ?> m) {
            return "dict of " + m.size();
        }
        if (v instanceof java.util.Set<?> s) {
            return "set of " + s.size();
        }
        if (v instanceof byte[] b) {
            return "bytes of " + b.length;
        }
        return v.getClass().getSimpleName();
    }

    /** Python's None on the stack (Java null is kept for it in containers). */
    static final Object NONE = new Object() {
        @Override
        public String toString() {
            return "None";
        }
    };
}
