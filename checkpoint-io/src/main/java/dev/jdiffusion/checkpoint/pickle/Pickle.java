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

    /** Python's None on the stack (Java null is kept for it in containers). */
    static final Object NONE = new Object() {
        @Override
        public String toString() {
            return "None";
        }
    };
}
