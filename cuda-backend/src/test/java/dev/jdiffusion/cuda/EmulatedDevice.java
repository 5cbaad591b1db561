package dev.jdiffusion.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.reflect.Field;
import java.nio.Buffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jcuda.Pointer;

/**
 * A GPU emulated on the CPU: the kernels' CUDA sources ({@code src/main/cuda}) compiled as host C++
 * with the emulator in {@code src/test/cuda-emulator} (every CUDA thread a fiber; barriers, warp
 * shuffles and WMMA emulated), device memory in host memory. It computes what the kernels compute,
 * so the backend's op tests can check the kernels' indexing and arithmetic where no GPU is; every
 * request is also checked as a {@link FakeDevice} checks it (the PTX's parameter lists, launch
 * limits, pointers inside live blocks), and every block lies between guards that read as NaN and
 * must not be written ({@link Memory}). It needs g++ ({@code $CXX} if set; C++20, x86-64) and the CUDA
 * headers (for {@code cuda_fp16.h});
 * the library is built into {@code target/cuda-emulator} when the sources are newer. Also used by
 * other modules' tests (this module's test jar), from their own directories.
 *
 * <p>It says nothing about speed or about what the real compiler and hardware do differently
 * (fast-math intrinsics, the tensor cores' rounding). Races between a block's threads, blocks that
 * write the same memory and reads of unwritten shared memory show as a difference from the
 * adversarial device ({@link #EmulatedDevice(boolean)}).
 */
public final class EmulatedDevice implements Device {
    private static final Path MODULE = module();
    private static final Path KERNELS = MODULE.resolve("src/main/cuda");
    private static final Path EMULATOR = MODULE.resolve("src/test/cuda-emulator");
    private static final Path OUT = MODULE.resolve("target/cuda-emulator");
    private static final Pattern KERNEL = Pattern.compile("extern \"C\" __global__ void (?:__launch_bounds__\\([^)]*\\) )?(\\w+)\\(");
    /**
     * A whole-line declaration of a shared array, static or (with group 1) dynamic; group 2 the word
     * before its name (the element type, but for an {@code __align__}ed static one) and group 3 its name.
     */
    private static final Pattern SHARED = Pattern.compile("\\s*(extern\\s+)?__shared__\\b[^;\\[]*?(\\w+)\\s+(\\w+)\\s*\\[[^;]*;\\s*");

    private static Library library;
    private static String unavailable;

    private final FakeDevice checks = new FakeDevice();
    private final boolean adversarial;
    /** Device memory of every emulated device, as one GPU's is: any of them can copy any block (the backends share a context). */
    private static final Map<Block, Memory> MEMORY = Collections.synchronizedMap(new IdentityHashMap<>());
    private final List<Block> mine = new ArrayList<>();

    /**
     * A block's memory: {@code segment}, between two guards of {@link #GUARD} bytes of all 1 bits
     * (NaN as F32, F16 and BF16) in {@code whole}. A kernel that reads past either end of a block it
     * was given reads NaN; one that writes there is caught after the launch ({@link #checkGuards}),
     * where a GPU would report an illegal address or corrupt a neighbour.
     */
    private record Memory(Arena arena, MemorySegment whole, MemorySegment segment) {
    }

    /** The guard bytes before and after every block (a multiple of the blocks' 256-byte alignment). */
    private static final int GUARD = 256;
    /** What every guard holds. */
    private static final MemorySegment GUARD_BYTES = Arena.global().allocate(GUARD).fill((byte) 0xFF);

    private record Library(MethodHandle launch, MethodHandle error) {
    }

    /** This module's directory, from its own tests or from a sibling module's (the working directory of each). */
    private static Path module() {
        Path here = Path.of("").toAbsolutePath();
        for (Path p : new Path[] {here, here.resolveSibling("cuda-backend"), here.resolve("cuda-backend")}) {
            if (Files.isDirectory(p.resolve("src/main/cuda")) && Files.isDirectory(p.resolve("src/test/cuda-emulator"))) {
                return p;
            }
        }
        return here;
    }

    /** A CUDA backend on an emulated GPU: float32 throughout ({@code fullPrecision}) or on the emulated tensor cores. */
    public static CudaBackend backend(boolean fullPrecision) {
        return new CudaBackend(new EmulatedDevice(), fullPrecision);
    }

    /**
     * The same on the adversarial emulated GPU ({@link #EmulatedDevice(boolean)}), where what reads
     * memory nothing wrote reads NaN: for whole networks and generations, which compute the same
     * bits on both devices when no kernel races ({@code RaceTest}).
     */
    public static CudaBackend adversarialBackend(boolean fullPrecision) {
        return new CudaBackend(new EmulatedDevice(true), fullPrecision);
    }

    EmulatedDevice() {
        this(false);
    }

    /**
     * With {@code adversarial} each block's threads run in the opposite order, the blocks are taken
     * from the last, every shared variable starts each block as all 1 bits (NaN as a float, -1
     * as an int) instead of what the block before left there, and so does new device memory. Between
     * two barriers the emulator runs a block's threads one after the other, so two threads that touch
     * the same memory between barriers (one writing) meet in opposite orders on the two devices, as do
     * two blocks that write the same memory; and a kernel that reads memory nothing wrote reads NaN
     * there. A kernel with none of these computes the same bits on both ({@code RaceTest}).
     */
    EmulatedDevice(boolean adversarial) {
        String why = unavailable();
        if (why != null) {
            throw new IllegalStateException("the CUDA emulator cannot be built: " + why);
        }
        this.adversarial = adversarial;
    }

    /** Why the emulator cannot run here (no g++, no CUDA headers, a build error), or null when it can. */
    public static synchronized String unavailable() {
        if (library == null && unavailable == null) {
            try {
                library = load(build());
            } catch (IOException | RuntimeException e) {
                unavailable = e.getMessage();
            }
        }
        return unavailable;
    }

    private static Path cudaInclude() {
        List<Path> candidates = new ArrayList<>();
        for (String v : new String[] {System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH")}) {
            if (v != null) {
                candidates.add(Path.of(v, "include"));
            }
        }
        candidates.add(Path.of("/usr/local/cuda/include"));
        String path = System.getenv("PATH");
        if (path != null) {
            for (String dir : path.split(":")) {
                Path nvcc = Path.of(dir, "nvcc");
                if (Files.isExecutable(nvcc)) {
                    try {
                        candidates.add(nvcc.toRealPath().getParent().resolveSibling("include"));
                    } catch (IOException ignored) {
                        // a broken link: try the others
                    }
                }
            }
        }
        return candidates.stream().filter(p -> Files.isRegularFile(p.resolve("cuda_fp16.h"))).findFirst()
                .orElseThrow(() -> new IllegalStateException("no CUDA headers (cuda_fp16.h) in " + candidates));
    }

    /** Writes the translation unit that includes the kernels and lists them, then compiles the library if it is out of date. */
    private static Path build() throws IOException {
        List<Path> sources;
        try (Stream<Path> s = Files.list(KERNELS)) {
            sources = s.filter(p -> p.toString().endsWith(".cu")).sorted().toList();
        }
        if (sources.isEmpty()) {
            throw new IllegalStateException("no .cu sources in " + KERNELS);
        }
        StringBuilder unit = new StringBuilder("// generated by EmulatedDevice\n#include \"cuda_emu.h\"\n");
        List<String> kernels = new ArrayList<>();
        StringBuilder shared = new StringBuilder();
        for (Path p : sources) {
            String text = Files.readString(p);
            // the source itself, each __shared__ declaration followed (on its line) by its poisoning
            unit.append("#line 1 \"").append(p).append("\"\n");
            for (String line : text.split("\n", -1)) {
                Matcher s = SHARED.matcher(line);
                unit.append(line);
                if (s.matches()) {
                    unit.append(s.group(1) != null ? " EMU_POISON_DYNAMIC(" : " EMU_POISON(").append(s.group(3)).append(')');
                    if (s.group(1) != null) {
                        // dynamic shared memory, defined after the sources: the most a launch may ask for
                        shared.append("alignas(32) thread_local ").append(s.group(2)).append(' ').append(s.group(3))
                                .append("[48 * 1024 / sizeof(").append(s.group(2)).append(")];\n");
                    }
                }
                unit.append('\n');
            }
            Matcher m = KERNEL.matcher(text);
            while (m.find()) {
                kernels.add(m.group(1));
            }
        }
        unit.append(shared).append("#include \"cuda_emu_kernels.h\"\nconst std::vector<emu::KernelEntry> emu::KERNELS = {\n");
        for (String k : kernels) {
            unit.append("    KERNEL(").append(k).append("),\n");
        }
        unit.append("};\n");
        Files.createDirectories(OUT);
        Path tu = OUT.resolve("kernels.cpp");
        Path lib = OUT.resolve("libcudaemu.so");
        String text = unit.toString();
        boolean same = Files.exists(tu) && Files.readString(tu).equals(text);
        if (!same) {
            Files.writeString(tu, text);
        }
        FileTime built = Files.exists(lib) ? Files.getLastModifiedTime(lib) : null;
        List<Path> inputs = new ArrayList<>(sources);
        inputs.add(tu);
        try (Stream<Path> s = Files.list(EMULATOR)) {
            s.forEach(inputs::add);
        }
        inputs.add(KERNELS.resolve("common.cuh"));
        boolean stale = built == null;
        for (Path p : inputs) {
            if (Files.exists(p) && (stale || Files.getLastModifiedTime(p).compareTo(built) > 0)) {
                stale = true;
            }
        }
        if (stale) {
            Path tmp = OUT.resolve("libcudaemu.so.tmp");
            String cxx = System.getenv("CXX") == null || System.getenv("CXX").isBlank() ? "g++" : System.getenv("CXX");
            List<String> cmd = List.of(cxx, "-std=c++20", "-O3", "-fno-strict-aliasing", "-march=native", "-fPIC", "-shared", "-I" + EMULATOR, "-I" + cudaInclude(),
                    "-I" + KERNELS, tu.toString(), EMULATOR.resolve("cuda_emu.cpp").toString(), "-o", tmp.toString(), "-lpthread");
            Process p;
            try {
                p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            } catch (IOException e) {
                throw new IllegalStateException(cxx + " cannot be run: " + e.getMessage(), e);
            }
            String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            try {
                if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
                    throw new IllegalStateException(cxx + " failed:\n" + log);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while building the emulator", e);
            }
            Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING);
        }
        return lib;
    }

    /** The kernels launched on this device so far, by name. */
    java.util.Set<String> launched() {
        return checks.launched;
    }

    private static Library load(Path lib) {
        SymbolLookup symbols = SymbolLookup.libraryLookup(lib, Arena.global());
        Linker linker = Linker.nativeLinker();
        ValueLayout.OfInt i = ValueLayout.JAVA_INT;
        MethodHandle launch = linker.downcallHandle(symbols.find("emu_launch").orElseThrow(),
                FunctionDescriptor.of(i, ValueLayout.ADDRESS, i, i, i, i, i, i, i, ValueLayout.ADDRESS, i, i));
        MethodHandle error = linker.downcallHandle(symbols.find("emu_error").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS.withTargetLayout(ValueLayout.JAVA_BYTE)));
        return new Library(launch, error);
    }

    @Override
    public Block allocate(long bytes) {
        Block b = checks.allocate(bytes);
        Arena arena = Arena.ofShared();
        MemorySegment whole = arena.allocate(Math.max(1, bytes) + 2L * GUARD, 256);
        MemorySegment memory = whole.asSlice(GUARD, Math.max(1, bytes));
        whole.asSlice(0, GUARD).copyFrom(GUARD_BYTES);
        whole.asSlice(GUARD + memory.byteSize(), GUARD).copyFrom(GUARD_BYTES);
        if (adversarial) {
            // as cuMemAlloc leaves it, undefined: NaN, not the zeros of a fresh host allocation
            memory.fill((byte) 0xFF);
        }
        MEMORY.put(b, new Memory(arena, whole, memory));
        mine.add(b);
        return b;
    }

    @Override
    public void free(Block block) {
        checks.free(block);
        mine.remove(block);
        MEMORY.remove(block).arena().close();
    }

    private MemorySegment segment(Address a, long bytes) {
        return MEMORY.get(a.block()).segment().asSlice(a.offset(), bytes);
    }

    /** JCuda's {@code Pointer} fields naming the Java array or buffer it points into, and where. */
    private static final Field POINTER_BUFFER = pointerField("buffer");
    private static final Field POINTER_OFFSET = pointerField("byteOffset");

    private static Field pointerField(String name) {
        try {
            Field f = Pointer.class.getDeclaredField(name);
            f.setAccessible(true);
            return f;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read JCuda pointers (" + name + ")", e);
        }
    }

    /** The host memory a JCuda pointer to a Java array or buffer names, from its byte offset on. */
    private static MemorySegment host(Pointer p, long bytes) {
        try {
            Buffer b = (Buffer) POINTER_BUFFER.get(p);
            if (b == null) {
                throw new IllegalArgumentException("a host pointer that is not to a Java array or buffer");
            }
            return MemorySegment.ofBuffer(b).asSlice((long) POINTER_OFFSET.get(p), bytes);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("cannot read a JCuda pointer", e);
        }
    }

    @Override
    public void copyToDevice(Address dst, Pointer src, long bytes) {
        checks.copyToDevice(dst, src, bytes);
        MemorySegment.copy(host(src, bytes), 0, segment(dst, bytes), 0, bytes);
    }

    @Override
    public void copyToHost(Pointer dst, Address src, long bytes) {
        checks.copyToHost(dst, src, bytes);
        MemorySegment.copy(segment(src, bytes), 0, host(dst, bytes), 0, bytes);
    }

    @Override
    public void zero(Address dst, long bytes) {
        checks.zero(dst, bytes);
        checks.stream(() -> segment(dst, bytes).fill((byte) 0));
    }

    @Override
    public void copy(Address dst, Address src, long bytes) {
        checks.copy(dst, src, bytes);
        checks.stream(() -> MemorySegment.copy(segment(src, bytes), 0, segment(dst, bytes), 0, bytes));
    }

    // captures: the checks' recording holds this device's work too, in order (see launch)
    @Override
    public void beginCapture() {
        checks.beginCapture();
    }

    @Override
    public Graph endCapture() {
        return checks.endCapture();
    }

    @Override
    public void abortCapture() {
        checks.abortCapture();
    }

    @Override
    public void launchGraph(Graph graph) {
        checks.launchGraph(graph);
    }

    @Override
    public void destroyGraph(Graph graph) {
        checks.destroyGraph(graph);
    }

    @Override
    public void launch(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object... args) {
        checks.launch(kernel, gridX, gridY, gridZ, threads, sharedBytes, args);
        Object[] copy = args.clone();
        checks.stream(() -> run(kernel, gridX, gridY, gridZ, threads, sharedBytes, copy));
    }

    private void run(String kernel, int gridX, int gridY, int gridZ, int threads, int sharedBytes, Object[] args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pointers = arena.allocate(ValueLayout.ADDRESS, Math.max(1, args.length));
            for (int i = 0; i < args.length; i++) {
                MemorySegment value;
                switch (args[i]) {
                    case Address a -> {
                        value = arena.allocate(ValueLayout.JAVA_LONG);
                        value.set(ValueLayout.JAVA_LONG, 0, a.block() == null ? 0
                                : MEMORY.get(a.block()).segment().address() + a.offset());
                    }
                    case Integer v -> value = arena.allocateFrom(ValueLayout.JAVA_INT, v);
                    case Long v -> value = arena.allocateFrom(ValueLayout.JAVA_LONG, v);
                    case Float v -> value = arena.allocateFrom(ValueLayout.JAVA_FLOAT, v);
                    case long[] v -> value = arena.allocateFrom(ValueLayout.JAVA_LONG, v);
                    default -> throw new IllegalArgumentException(kernel + ": argument " + i + " of type "
                            + args[i].getClass().getName());
                }
                pointers.setAtIndex(ValueLayout.ADDRESS, i, value);
            }
            int rc = (int) library.launch().invokeExact(arena.allocateFrom(kernel), gridX, gridY, gridZ, threads, 1, 1,
                    sharedBytes, pointers, args.length, adversarial ? 1 : 0);
            if (rc != 0) {
                MemorySegment why = (MemorySegment) library.error().invokeExact();
                throw new IllegalStateException(kernel + " (emulated): " + why.reinterpret(Long.MAX_VALUE).getString(0));
            }
            checkGuards(kernel, args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Throws when a launch wrote into the guard before or after a block it was given. */
    private static void checkGuards(String kernel, Object[] args) {
        for (int i = 0; i < args.length; i++) {
            if (args[i] instanceof Address a && a.block() != null) {
                Memory m = MEMORY.get(a.block());
                long size = m.segment().byteSize();
                for (long at : new long[] {0, GUARD + size}) {
                    MemorySegment guard = m.whole().asSlice(at, GUARD);
                    long j = guard.mismatch(GUARD_BYTES);
                    if (j >= 0) {
                        guard.copyFrom(GUARD_BYTES);
                        throw new IllegalStateException(kernel + " (emulated) wrote outside the " + size
                                + "-byte block of argument " + i + ": " + (at == 0 ? GUARD - j + " bytes before its start"
                                : "byte " + j + " past its end"));
                    }
                }
            }
        }
    }

    @Override
    public void synchronize() {
        checks.synchronize();
    }

    @Override
    public String name() {
        return "CUDA emulated on the CPU" + (adversarial ? " (threads and blocks in reverse, new memory NaN)" : "");
    }

    @Override
    public void close() {
        for (Block b : mine) {
            MEMORY.remove(b).arena().close();
        }
        mine.clear();
        checks.close();
    }
}
