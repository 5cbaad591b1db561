package dev.jdiffusion.core.cpu;

import dev.jdiffusion.core.tensor.DType;
import dev.jdiffusion.core.tensor.Storage;
import dev.jdiffusion.core.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Single-precision matrix multiplication {@code C = A·B + bias} in the style of BLIS / GotoBLAS:
 * the operands are packed into contiguous panels (which is where transposition, dtype conversion and
 * im2col happen, see {@link PackA} and {@link PackB}), and a register-blocked micro-kernel multiplies
 * an {@code MR × kc} panel of A by a {@code kc × NR} sliver of B. A linear layer followed by GEGLU
 * runs fused ({@link #multiplyGeglu}).
 *
 * <p>With 512-bit vectors (32 registers) the micro-kernel is 12 rows × 2 vectors (24 accumulators,
 * no spills in C2's code); with narrower vectors it is 6 × 2. Loop order of a task, innermost last:
 * K blocks of {@link #KC} (the task's A panels packed once per block, in L2); groups of B slivers,
 * packed together right before use ({@link #MAX_SLIVER_GROUP}); the slivers of a group, each of which
 * sits in L1 while the A panels stream past it. For small K the first two swap (column strips, see
 * {@link #block}).
 *
 * <p>Tasks are (batch entry, block of rows, group of columns), shaped for the least estimated time
 * (see {@link #split}). Every element of C is computed by one task with a fixed order of additions
 * (K in blocks of {@link #KC}, in order), so results are identical for any number of threads and
 * either loop order.
 */
public final class Gemm {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    static final boolean WIDE = L >= 16;
    /** Rows of the micro-tile (broadcast from the packed A panel). */
    public static final int MR = WIDE ? 12 : 6;
    /** Columns of the micro-tile (vector loads from the packed B sliver). */
    public static final int NR = 2 * L;
    /** Depth of one packed block (a B sliver is KC·NR floats: 32 KiB, in L1). Fixed: it determines the order of additions. */
    public static final int KC = 256;
    /** Most A panels in one task's block (80 · 12 rows · 256 · 4 bytes = 960 KiB, in L2). */
    static final int MAX_PANELS = WIDE ? 80 : 160;
    /**
     * Most floats of C in one task (2 MiB): the task's C tiles are read and written once per K block,
     * so a wider task is cut into column groups to keep them in cache.
     */
    static final int C_BLOCK_FLOATS = 512 * 1024;

    /**
     * Multiply-adds that take about as long as packing one element, which weighs packing against work
     * when choosing a split: an estimate (packing about one element per cycle, the kernel 32
     * multiply-adds per cycle with 16 lanes); 16 and 64 chose splits that ran no faster.
     */
    static final double MACS_PER_PACKED_ELEMENT = 32;

    /**
     * What one pass over an element of C (read and written once per K block when K blocks are
     * outermost) costs, in packed elements: 1 chose column strips for 512×10240×1280 (a GEGLU
     * projection), which ran 3 % slower than K blocks outermost; 0.5 keeps strips where they ran faster
     * (K = 320 and 640 at 64×64 and 32×32: 3 to 10 %).
     */
    static final double C_PASS_COST = 0.5;

    /**
     * Most B slivers packed together before the micro-kernels use them. Packing one sliver at a time
     * between kernel runs, which stream A through L1, reads a convolution's scattered image rows from
     * L2 or L3 each time (the 320-channel convolution at 64×64 spent 11 % of its time packing on a
     * 2-core Xeon, where packing all of it back to back takes 3 %); in a group, neighbouring slivers
     * find those rows in L1, and the kernels then read the packed slivers in order. 4 and 8 ran alike
     * there: 3.5 points of the ceiling faster than 1 on that convolution, 1.5 to 2 on two threads and
     * at 640 channels; plain GEMMs unchanged.
     */
    static final int MAX_SLIVER_GROUP = 8;

    /** The L2 a task's A block and B slivers share: the smallest per-core L2 of the x86 cores in use (1 MiB). */
    static final long L2_BYTES = 1L << 20;

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    private Gemm() {
    }

    /**
     * Packs {@code A[i0..i0+mc, k0..k0+kc]} of one batch entry into MR-row panels: element (i, k) of
     * panel p at {@code dst[off + p·kc·MR + k·MR + r]}, rows past mc zero. With 16-lane vectors it may
     * write up to {@code L − MR} floats past the last panel (packed in order, later panels and K blocks
     * overwrite them; the packing buffer has that room at its end).
     */
    public interface PackA {
        void pack(int batch, int i0, int mc, int k0, int kc, float[] dst, int off);
    }

    /**
     * Packs {@code B[k0..k0+kc, j0..j0+nc]} of one batch entry into NR-column slivers: element (k, c)
     * of sliver q at {@code dst[off + q·kc·NR + k·NR + c]}, columns past nc zero. It may write up to
     * {@code L − 1} floats past the last sliver ({@link #packIm2col}; the packing buffer has that room).
     */
    public interface PackB {
        void pack(int batch, int k0, int kc, int j0, int nc, float[] dst, int off);
    }

    /**
     * {@code C[b] = A[b]·B[b] + bias} for {@code b < batch}; C is row-major float32 with leading
     * dimension {@code ldc}, batch entry b starting at {@code cOff + b·cBatchStride}, and is written
     * without being read first (its first K block is stored, the later ones added). The bias has one
     * value per row of C when {@code biasPerRow} (a convolution's channels), else one per column (a
     * linear layer's outputs); null for none. When {@code aShared}, A is the same for every batch entry
     * (a convolution's weight): the batch entries' columns are then one column space, so that each A
     * panel is packed once for all of them.
     */
    public static void multiply(WorkerPool pool, int batch, int m, int n, int k, PackA a, boolean aShared, PackB b,
                                float[] c, long cOff, long cBatchStride, int ldc, float[] bias, boolean biasPerRow) {
        if (batch == 0 || m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            // no products: C is the bias (or zero)
            for (int bi = 0; bi < batch; bi++) {
                for (int i = 0; i < m; i++) {
                    int row = (int) (cOff + bi * cBatchStride + (long) i * ldc);
                    for (int j = 0; j < n; j++) {
                        c[row + j] = bias == null ? 0f : bias[biasPerRow ? i : j];
                    }
                }
            }
            return;
        }
        int panels = ceilDiv(m, MR);
        int slivers = ceilDiv(n, NR);
        int taskBatch = aShared ? 1 : batch;
        int columns = aShared ? batch * slivers : slivers;
        int[] split = split(taskBatch, panels, columns, k, pool.threads(), false);
        run(pool, taskBatch, m, n, slivers, panels, columns, k, split, a, b,
                new Out(c, cOff, cBatchStride, ldc, bias, biasPerRow, null));
    }

    /** Whether {@link #multiplyGeglu} takes f features (each half of a sliver being L of them) and this K. */
    public static boolean gegluFits(int f, int k) {
        return f % L == 0 && k > 0 && k <= MAX_PANELS * KC;
    }

    /**
     * A linear layer with GEGLU after it, fused: {@code out[i, j] = h · gelu(g)} (erf form) where
     * {@code h = (A·B + bias)[i, j]} and {@code g = (A·B + bias)[i, f + j]}, out row-major M × f. B
     * must be packed with {@link #packBGeglu} (each sliver L value columns, then their L gate
     * columns) and the bias given in that order ({@link #gegluOrder}). The products go through a
     * per-task strip in cache, never through an M × 2f matrix; in column strips, with the additions in
     * the order of {@link #multiply}, so the result is bit for bit that of the unfused layers.
     */
    public static void multiplyGeglu(WorkerPool pool, int m, int f, int k, PackA a, PackB b, float[] bias, float[] out) {
        if (!gegluFits(f, k)) {
            throw new IllegalArgumentException("fused GEGLU needs features a multiple of " + L + " and K at most "
                    + MAX_PANELS * KC + ": " + f + ", " + k);
        }
        if (m == 0 || f == 0) {
            return;
        }
        int panels = ceilDiv(m, MR);
        int slivers = f / L;
        int[] split = split(1, panels, slivers, k, pool.threads(), true);
        run(pool, 1, m, 2 * f, slivers, panels, slivers, k, split, a, b, new Out(null, 0, 0, 0, bias, false, out));
    }

    /** Runs the tasks of a split (see {@link #multiply}). */
    private static void run(WorkerPool pool, int taskBatch, int m, int n, int slivers, int panels, int columns, int k,
                            int[] split, PackA a, PackB b, Out out) {
        final int rowBlocks = split[0];
        final int colGroups = split[1];
        final boolean strips = split[2] == 1;
        pool.parallelFor(taskBatch * rowBlocks * colGroups, task -> {
            int bi = task / (rowBlocks * colGroups);
            int rest = task % (rowBlocks * colGroups);
            int rb = rest / colGroups;
            int cg = rest % colGroups;
            int p0 = (int) ((long) panels * rb / rowBlocks);
            int p1 = (int) ((long) panels * (rb + 1) / rowBlocks);
            int q0 = (int) ((long) columns * cg / colGroups);
            int q1 = (int) ((long) columns * (cg + 1) / colGroups);
            block(bi, m, n, slivers, p0, p1, q0, q1, k, strips, a, b, out);
        });
    }

    /**
     * Chooses how to cut C into tasks: {@code {row blocks, column groups, order}}, order 1 for
     * {@linkplain #block column strips} (the task's A block packed for the whole of K), 0 for K blocks
     * outermost (A blocks of one K block; C blocks of at most {@link #C_BLOCK_FLOATS}). Either way the A
     * block stays in L2. Of all such splits, the one with the least estimated time per thread: the
     * multiply-adds, the packing (A is packed once per column group, B once per row block), C's traffic
     * when K blocks are outermost (C is read and written once per K block) and the threads left idle
     * when the tasks do not divide evenly among them ({@code stripsOnly}: of the column-strip splits).
     * The split never changes a result.
     */
    static int[] split(int batch, int panels, int slivers, int k, int threads, boolean stripsOnly) {
        double work = (double) batch * panels * MR * slivers * NR / MACS_PER_PACKED_ELEMENT;
        // C elements read and written per unit of K, for the two orders (costed like a packed element)
        double cPerK = (double) batch * panels * MR * slivers * NR / k;
        int[] best = null;
        double bestTime = Double.MAX_VALUE;
        for (int order = stripsOnly ? 1 : 0; order <= 1; order++) {
            int maxPanels = order == 1 ? (int) Math.min(MAX_PANELS, (long) MAX_PANELS * KC / k) : MAX_PANELS;
            if (maxPanels == 0) {
                continue;
            }
            double cTraffic = C_PASS_COST * cPerK * (order == 1 ? 1 : ceilDiv(k, KC));
            int minRows = ceilDiv(panels, maxPanels);
            int maxRows = (int) Math.min(panels, minRows + 4L * threads + 8);
            for (int r = minRows; r <= maxRows; r++) {
                int rowsPerBlock = ceilDiv(panels, r) * MR;
                int minCols = order == 1 ? 1
                        : Math.min(slivers, ceilDiv(slivers, Math.max(1, C_BLOCK_FLOATS / (rowsPerBlock * NR))));
                int maxCols = (int) Math.min(slivers, minCols + 4L * threads + 8);
                for (int cg = minCols; cg <= maxCols; cg++) {
                    long tasks = (long) batch * r * cg;
                    if (tasks < threads && (long) batch * panels * slivers >= threads) {
                        continue;
                    }
                    double packed = (double) batch * ((double) panels * MR * cg + (double) slivers * NR * r);
                    double perThread = (work + packed + cTraffic) * ((tasks + threads - 1) / threads) / tasks;
                    if (perThread < bestTime) {
                        bestTime = perThread;
                        best = new int[] {r, cg, order};
                    }
                }
            }
        }
        return best;
    }

    /**
     * One task: rows {@code [p0·MR, p1·MR)} by column slivers {@code [q0, q1)}, sliver q being sliver
     * {@code q mod slivers} of batch entry {@code batch + q / slivers} (past the first entry only when A
     * is shared). The A panels stay in L2; the B slivers are packed a group at a time right before use
     * (a sliver stays in L1 while the A panels stream past it). With {@code strips}, the task's A
     * panels are packed for the whole of K once and each group of column slivers runs through every K
     * block before the next, so that C is read and written once; otherwise K blocks are outermost and
     * the A panels are packed per K block. The additions into an element of C happen in the same order
     * either way, whatever the group.
     */
    private static void block(int batch, int m, int n, int slivers, int p0, int p1, int q0, int q1, int k,
                              boolean strips, PackA a, PackB b, Out out) {
        Buffers buf = BUFFERS.get();
        int i0 = p0 * MR;
        int mc = Math.min(m, p1 * MR) - i0;
        int panels = p1 - p0;
        // GEGLU's strips hold one sliver's products at a time
        int group = out.geglu() != null ? 1 : sliverGroup((long) panels * MR * (strips ? k : KC));
        float[] bp = buf.b(group * NR * KC);
        if (strips) {
            float[] ap = buf.a(panels * MR * k);
            for (int k0 = 0; k0 < k; k0 += KC) {
                a.pack(batch, i0, mc, k0, Math.min(KC, k - k0), ap, panels * MR * k0);
            }
            for (int q = q0; q < q1; ) {
                int g = groupSize(q, q1, slivers, group);
                Out to = out;
                if (out.geglu() != null) {
                    // this sliver's products into the strip (row i0 + r, column j0 + c at r·NR + c)
                    to = new Out(buf.strip(panels * MR * NR), -((long) i0 * NR + (long) q * NR), 0, NR, out.bias(),
                            false, null);
                }
                for (int k0 = 0; k0 < k; k0 += KC) {
                    int kc = Math.min(KC, k - k0);
                    packSlivers(batch, n, slivers, q, g, k0, kc, b, bp);
                    for (int i = 0; i < g; i++) {
                        sliver(batch, n, slivers, q + i, k0, kc, ap, panels * MR * k0, panels, i0, mc, bp, i * kc * NR, to,
                                buf);
                    }
                }
                if (out.geglu() != null) {
                    geglu(to.c(), mc, out.geglu(), i0, q * L, n / 2);
                }
                q += g;
            }
        } else {
            float[] ap = buf.a(panels * MR * KC);
            for (int k0 = 0; k0 < k; k0 += KC) {
                int kc = Math.min(KC, k - k0);
                a.pack(batch, i0, mc, k0, kc, ap, 0);
                for (int q = q0; q < q1; ) {
                    int g = groupSize(q, q1, slivers, group);
                    packSlivers(batch, n, slivers, q, g, k0, kc, b, bp);
                    for (int i = 0; i < g; i++) {
                        sliver(batch, n, slivers, q + i, k0, kc, ap, 0, panels, i0, mc, bp, i * kc * NR, out, buf);
                    }
                    q += g;
                }
            }
        }
    }

    /**
     * How many B slivers are packed together before the micro-kernels use them, for an A block of
     * {@code aFloats}: up to {@link #MAX_SLIVER_GROUP}, as many as fit beside the A block in
     * {@link #L2_BYTES}, at least one.
     */
    static int sliverGroup(long aFloats) {
        long room = (L2_BYTES - 4 * aFloats) / (4L * NR * KC);
        return (int) Math.max(1, Math.min(MAX_SLIVER_GROUP, room));
    }

    /** How many slivers from q on are packed together: up to {@code group}, before q1, within one batch entry. */
    private static int groupSize(int q, int q1, int slivers, int group) {
        return Math.min(Math.min(group, q1 - q), slivers - q % slivers);
    }

    /** Packs slivers {@code [q, q + g)} (of one batch entry) of K block {@code [k0, k0 + kc)}, sliver q + i at {@code i·kc·NR}. */
    private static void packSlivers(int batch, int n, int slivers, int q, int g, int k0, int kc, PackB b, float[] bp) {
        int j0 = (q % slivers) * NR;
        b.pack(batch + q / slivers, k0, kc, j0, Math.min(g * NR, n - j0), bp, 0);
    }

    /**
     * Where the products go: C (see {@link #multiply}) and the bias that its first K block starts from;
     * with {@code geglu} (the output of {@link #multiplyGeglu}) C is a task's strip instead.
     */
    private record Out(float[] c, long cOff, long cBatchStride, int ldc, float[] bias, boolean biasPerRow,
                       float[] geglu) {
    }

    /**
     * The GEGLU of a strip's rows: {@code out[(i0 + r)·f + j0 + c] = h · gelu(g)}, h and g the strip's
     * columns c and L + c of row r (see {@link #multiplyGeglu}).
     */
    private static void geglu(float[] strip, int rows, float[] out, int i0, int j0, int f) {
        for (int r = 0; r < rows; r++) {
            FloatVector h = FloatVector.fromArray(S, strip, r * NR);
            FloatVector g = FloatVector.fromArray(S, strip, r * NR + L);
            h.mul(VecMath.gelu(g)).intoArray(out, (i0 + r) * f + j0);
        }
    }

    /**
     * Multiplies the packed A panels at {@code ao} by column sliver q of K block {@code [k0, k0 + kc)},
     * packed at {@code bo}, adding to C's tiles; the first K block starts from the bias (or zero)
     * instead of C's contents.
     */
    private static void sliver(int batch, int n, int slivers, int q, int k0, int kc, float[] ap, int ao, int panels,
                               int i0, int mc, float[] bp, int bo, Out out, Buffers buf) {
        int bq = batch + q / slivers;
        int j0 = (q % slivers) * NR;
        int cols = Math.min(NR, n - j0);
        int ldc = out.ldc();
        float[] c = out.c();
        long cBase = out.cOff() + bq * out.cBatchStride();
        boolean first = k0 == 0;
        float[] bias = out.bias();
        for (int p = 0; p < panels; p++) {
            int rows = Math.min(MR, mc - p * MR);
            int row0 = i0 + p * MR;
            int po = ao + p * kc * MR;
            long co = cBase + (long) row0 * ldc + j0;
            if (rows == MR && cols == NR) {
                if (!first) {
                    kernel(kc, ap, po, bp, bo, c, (int) co, ldc, c, (int) co, ldc);
                } else if (bias == null) {
                    kernel(kc, ap, po, bp, bo, buf.zeros(), 0, 0, c, (int) co, ldc);
                } else if (out.biasPerRow()) {
                    kernel(kc, ap, po, bp, bo, buf.rowBias(bias, row0), 0, NR, c, (int) co, ldc);
                } else {
                    kernel(kc, ap, po, bp, bo, bias, j0, 0, c, (int) co, ldc);
                }
            } else {
                // an edge tile: into the scratch tile, then added to the rows and columns of C that exist
                float[] tile = buf.tile();
                kernel(kc, ap, po, bp, bo, buf.zeros(), 0, 0, tile, 0, NR);
                for (int r = 0; r < rows; r++) {
                    int crow = (int) (co + (long) r * ldc);
                    for (int j = 0; j < cols; j++) {
                        float from = !first ? c[crow + j]
                                : bias == null ? 0f : out.biasPerRow() ? bias[row0 + r] : bias[j0 + j];
                        c[crow + j] = from + tile[r * NR + j];
                    }
                }
            }
        }
    }

    /**
     * The micro-tile: {@code c[co + r·ldc + j] = ci[cio + r·ldi + j] + Σ_k A(r, k)·B(k, j)} for r < MR,
     * j < NR; {@code ci} is C itself (the tile's contents added), a bias or zeros ({@code ldi} 0: one
     * row for every row).
     */
    static void kernel(int kc, float[] a, int ao, float[] b, int bo, float[] ci, int cio, int ldi, float[] c, int co,
                       int ldc) {
        if (WIDE) {
            kernel12x2(kc, a, ao, b, bo, ci, cio, ldi, c, co, ldc);
        } else {
            kernel6x2(kc, a, ao, b, bo, ci, cio, ldi, c, co, ldc);
        }
    }

    private static void kernel12x2(int kc, float[] a, int ao, float[] b, int bo, float[] ci, int cio, int ldi,
                                   float[] c, int co, int ldc) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00;
        FloatVector c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00;
        FloatVector c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00;
        FloatVector c91 = c00, c100 = c00, c101 = c00, c110 = c00, c111 = c00;
        for (int k = 0; k < kc; k++) {
            int bi = bo + k * (2 * L);
            int ai = ao + k * 12;
            FloatVector b0 = FloatVector.fromArray(S, b, bi);
            FloatVector b1 = FloatVector.fromArray(S, b, bi + L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, a[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, a[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            x = FloatVector.broadcast(S, a[ai + 6]);
            c60 = x.fma(b0, c60); c61 = x.fma(b1, c61);
            x = FloatVector.broadcast(S, a[ai + 7]);
            c70 = x.fma(b0, c70); c71 = x.fma(b1, c71);
            x = FloatVector.broadcast(S, a[ai + 8]);
            c80 = x.fma(b0, c80); c81 = x.fma(b1, c81);
            x = FloatVector.broadcast(S, a[ai + 9]);
            c90 = x.fma(b0, c90); c91 = x.fma(b1, c91);
            x = FloatVector.broadcast(S, a[ai + 10]);
            c100 = x.fma(b0, c100); c101 = x.fma(b1, c101);
            x = FloatVector.broadcast(S, a[ai + 11]);
            c110 = x.fma(b0, c110); c111 = x.fma(b1, c111);
        }
        // every load before the first store: with some row strides (a multiple of 4 KiB apart) a load
        // after a store to another row would wait on it (4K aliasing)
        c00 = c00.add(FloatVector.fromArray(S, ci, cio));
        c01 = c01.add(FloatVector.fromArray(S, ci, cio + L));
        c10 = c10.add(FloatVector.fromArray(S, ci, cio + ldi));
        c11 = c11.add(FloatVector.fromArray(S, ci, cio + ldi + L));
        c20 = c20.add(FloatVector.fromArray(S, ci, cio + 2 * ldi));
        c21 = c21.add(FloatVector.fromArray(S, ci, cio + 2 * ldi + L));
        c30 = c30.add(FloatVector.fromArray(S, ci, cio + 3 * ldi));
        c31 = c31.add(FloatVector.fromArray(S, ci, cio + 3 * ldi + L));
        c40 = c40.add(FloatVector.fromArray(S, ci, cio + 4 * ldi));
        c41 = c41.add(FloatVector.fromArray(S, ci, cio + 4 * ldi + L));
        c50 = c50.add(FloatVector.fromArray(S, ci, cio + 5 * ldi));
        c51 = c51.add(FloatVector.fromArray(S, ci, cio + 5 * ldi + L));
        c60 = c60.add(FloatVector.fromArray(S, ci, cio + 6 * ldi));
        c61 = c61.add(FloatVector.fromArray(S, ci, cio + 6 * ldi + L));
        c70 = c70.add(FloatVector.fromArray(S, ci, cio + 7 * ldi));
        c71 = c71.add(FloatVector.fromArray(S, ci, cio + 7 * ldi + L));
        c80 = c80.add(FloatVector.fromArray(S, ci, cio + 8 * ldi));
        c81 = c81.add(FloatVector.fromArray(S, ci, cio + 8 * ldi + L));
        c90 = c90.add(FloatVector.fromArray(S, ci, cio + 9 * ldi));
        c91 = c91.add(FloatVector.fromArray(S, ci, cio + 9 * ldi + L));
        c100 = c100.add(FloatVector.fromArray(S, ci, cio + 10 * ldi));
        c101 = c101.add(FloatVector.fromArray(S, ci, cio + 10 * ldi + L));
        c110 = c110.add(FloatVector.fromArray(S, ci, cio + 11 * ldi));
        c111 = c111.add(FloatVector.fromArray(S, ci, cio + 11 * ldi + L));
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
        c60.intoArray(c, co + 6 * ldc);
        c61.intoArray(c, co + 6 * ldc + L);
        c70.intoArray(c, co + 7 * ldc);
        c71.intoArray(c, co + 7 * ldc + L);
        c80.intoArray(c, co + 8 * ldc);
        c81.intoArray(c, co + 8 * ldc + L);
        c90.intoArray(c, co + 9 * ldc);
        c91.intoArray(c, co + 9 * ldc + L);
        c100.intoArray(c, co + 10 * ldc);
        c101.intoArray(c, co + 10 * ldc + L);
        c110.intoArray(c, co + 11 * ldc);
        c111.intoArray(c, co + 11 * ldc + L);
    }

    private static void kernel6x2(int kc, float[] a, int ao, float[] b, int bo, float[] ci, int cio, int ldi,
                                   float[] c, int co, int ldc) {
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int k = 0; k < kc; k++) {
            int bi = bo + k * (2 * L);
            int ai = ao + k * 6;
            FloatVector b0 = FloatVector.fromArray(S, b, bi);
            FloatVector b1 = FloatVector.fromArray(S, b, bi + L);
            FloatVector x = FloatVector.broadcast(S, a[ai]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[ai + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[ai + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[ai + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(S, a[ai + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(S, a[ai + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
        }
        // every load before the first store: with some row strides (a multiple of 4 KiB apart) a load
        // after a store to another row would wait on it (4K aliasing)
        c00 = c00.add(FloatVector.fromArray(S, ci, cio));
        c01 = c01.add(FloatVector.fromArray(S, ci, cio + L));
        c10 = c10.add(FloatVector.fromArray(S, ci, cio + ldi));
        c11 = c11.add(FloatVector.fromArray(S, ci, cio + ldi + L));
        c20 = c20.add(FloatVector.fromArray(S, ci, cio + 2 * ldi));
        c21 = c21.add(FloatVector.fromArray(S, ci, cio + 2 * ldi + L));
        c30 = c30.add(FloatVector.fromArray(S, ci, cio + 3 * ldi));
        c31 = c31.add(FloatVector.fromArray(S, ci, cio + 3 * ldi + L));
        c40 = c40.add(FloatVector.fromArray(S, ci, cio + 4 * ldi));
        c41 = c41.add(FloatVector.fromArray(S, ci, cio + 4 * ldi + L));
        c50 = c50.add(FloatVector.fromArray(S, ci, cio + 5 * ldi));
        c51 = c51.add(FloatVector.fromArray(S, ci, cio + 5 * ldi + L));
        c00.intoArray(c, co);
        c01.intoArray(c, co + L);
        c10.intoArray(c, co + ldc);
        c11.intoArray(c, co + ldc + L);
        c20.intoArray(c, co + 2 * ldc);
        c21.intoArray(c, co + 2 * ldc + L);
        c30.intoArray(c, co + 3 * ldc);
        c31.intoArray(c, co + 3 * ldc + L);
        c40.intoArray(c, co + 4 * ldc);
        c41.intoArray(c, co + 4 * ldc + L);
        c50.intoArray(c, co + 5 * ldc);
        c51.intoArray(c, co + 5 * ldc + L);
    }

    // ---- packers for matrices stored in tensors ----------------------------------------------------

    /**
     * A (batched) row-major matrix inside a tensor: element (row, col) of batch entry b is flat
     * element {@code b·batchStride + row·ld + col}. {@code transposed} swaps the roles: the logical
     * element (i, k) is stored at (k, i).
     */
    public record Matrix(Tensor tensor, long batchStride, int ld, boolean transposed) {
        /** Reads {@code n} consecutive stored elements starting at flat index {@code e} as float32. */
        void read(long e, float[] dst, int off, int n) {
            if (tensor.dtype().isHalf() && tensor.storage() instanceof Storage.Segment(MemorySegment seg)
                    && e >= 0 && e + n <= tensor.numel()) {
                HalfVectors.toFloat(seg, tensor.offset() + e, tensor.dtype() == DType.BF16, dst, off, n);
            } else {
                tensor.copyTo(e, dst, off, n);
            }
        }
    }

    /** Packs A from a matrix (A is logically M×K; stored M×K, or K×M when transposed). */
    public static PackA packA(Matrix m) {
        return (batch, i0, mc, k0, kc, dst, off) -> {
            long base = batch * m.batchStride();
            int panels = ceilDiv(mc, MR);
            if (!m.transposed()) {
                float[] row = BUFFERS.get().row(MR * kc);
                for (int p = 0; p < panels; p++) {
                    int pb = off + p * kc * MR;
                    int rows = Math.min(MR, mc - p * MR);
                    float[] src;
                    int srcOff;
                    int ld;
                    if (m.tensor().isFloatArray() && rows == MR) {
                        src = m.tensor().floatArray();
                        srcOff = (int) (m.tensor().offset() + base + (long) (i0 + p * MR) * m.ld() + k0);
                        ld = m.ld();
                    } else {
                        for (int r = 0; r < MR; r++) {
                            if (r < rows) {
                                m.read(base + (long) (i0 + p * MR + r) * m.ld() + k0, row, r * kc, kc);
                            } else {
                                java.util.Arrays.fill(row, r * kc, (r + 1) * kc, 0f);
                            }
                        }
                        src = row;
                        srcOff = 0;
                        ld = kc;
                    }
                    transposeToPanel(src, srcOff, ld, kc, dst, pb);
                }
            } else {
                for (int p = 0; p < panels; p++) {
                    int pb = off + p * kc * MR;
                    int rows = Math.min(MR, mc - p * MR);
                    for (int k = 0; k < kc; k++) {
                        m.read(base + (long) (k0 + k) * m.ld() + i0 + p * MR, dst, pb + k * MR, rows);
                        for (int r = rows; r < MR; r++) {
                            dst[pb + k * MR + r] = 0f;
                        }
                    }
                }
            }
        };
    }

    /** The first MR lanes: one k of a panel. */
    private static final VectorMask<Float> PANEL_MASK = VectorMask.fromLong(S, (1L << Math.min(MR, L)) - 1);

    /** Whether {@link #transpose16} serves the packers (16 lanes); otherwise they gather (WIDE) or copy scalars. */
    private static final boolean TRANSPOSE16 = L == 16;

    /**
     * Lane indices of the two halves of a perfect shuffle of two vectors (lane 2m + s from lane m, resp.
     * L/2 + m, of the first vector for s = 0 and of the second for s = 1); {@code selectFrom(v, w)}
     * takes index i below L from v and L + i from w.
     */
    private static final FloatVector ZIP_LO = zipIndices(0);
    private static final FloatVector ZIP_HI = zipIndices(L / 2);

    private static FloatVector zipIndices(int from) {
        float[] idx = new float[L];
        for (int m = 0; m < L / 2; m++) {
            idx[2 * m] = from + m;
            idx[2 * m + 1] = L + from + m;
        }
        return FloatVector.fromArray(S, idx, 0);
    }

    /** Writes MR rows {@code src[off + r·ld + k]} (k < kc) as the panel {@code dst[pb + k·MR + r]}. */
    private static void transposeToPanel(float[] src, int off, int ld, int kc, float[] dst, int pb) {
        int k = 0;
        if (TRANSPOSE16) {
            // each block's last store runs L − MR floats on, into slots written after it (the next k
            // block, the next panel) or the buffer's slack (see Buffers#a)
            for (; k + L <= kc; k += L) {
                transpose16(src, off + k, ld, MR, dst, pb + k * MR, MR);
            }
        }
        if (WIDE) {
            // one masked gather of the MR rows' element k per step (for the k past the 16-k blocks; slow
            // where gathers are slow, see transpose16)
            int[] rows = BUFFERS.get().rowOffsets(ld);
            for (; k < kc; k++) {
                FloatVector.fromArray(S, src, off + k, rows, 0, PANEL_MASK).intoArray(dst, pb + k * MR, PANEL_MASK);
            }
        } else {
            for (; k < kc; k++) {
                for (int r = 0; r < MR; r++) {
                    dst[pb + k * MR + r] = src[off + r * ld + k];
                }
            }
        }
    }

    /**
     * Transposes a 16 × 16 block in registers: row r is {@code src[off + r·ld ..+ 16]}, rows from
     * {@code rows} on (at least 12) repeat the last one, and element k of each row goes to
     * {@code dst[doff + k·ds + r]} for all 16 r, in increasing k: with {@code ds} below 16 each store
     * runs into the next k's slots, which the next store overwrites, and the last one runs
     * {@code 16 − ds} floats past the block. Four rounds of perfect shuffles (64 two-vector permutes)
     * instead of 16 gathers: packing the 4096 × 2880 A of a GEMM took 1.04 ns per element with gathers on
     * a Zen 5 core, 0.13–0.15 ns with this. Plain loads
     * and stores only: with masked ones C1 runs out of virtual registers compiling this method and
     * never hands it on to C2. Only for 16 lanes ({@link #TRANSPOSE16}).
     */
    private static void transpose16(float[] src, int off, int ld, int rows, float[] dst, int doff, int ds) {
        FloatVector v0 = FloatVector.fromArray(S, src, off);
        FloatVector v1 = FloatVector.fromArray(S, src, off + 1 * ld);
        FloatVector v2 = FloatVector.fromArray(S, src, off + 2 * ld);
        FloatVector v3 = FloatVector.fromArray(S, src, off + 3 * ld);
        FloatVector v4 = FloatVector.fromArray(S, src, off + 4 * ld);
        FloatVector v5 = FloatVector.fromArray(S, src, off + 5 * ld);
        FloatVector v6 = FloatVector.fromArray(S, src, off + 6 * ld);
        FloatVector v7 = FloatVector.fromArray(S, src, off + 7 * ld);
        FloatVector v8 = FloatVector.fromArray(S, src, off + 8 * ld);
        FloatVector v9 = FloatVector.fromArray(S, src, off + 9 * ld);
        FloatVector v10 = FloatVector.fromArray(S, src, off + 10 * ld);
        FloatVector v11 = FloatVector.fromArray(S, src, off + 11 * ld);
        FloatVector v12 = FloatVector.fromArray(S, src, off + Math.min(12, rows - 1) * ld);
        FloatVector v13 = FloatVector.fromArray(S, src, off + Math.min(13, rows - 1) * ld);
        FloatVector v14 = FloatVector.fromArray(S, src, off + Math.min(14, rows - 1) * ld);
        FloatVector v15 = FloatVector.fromArray(S, src, off + Math.min(15, rows - 1) * ld);
        // element (row r3r2r1r0, lane l3l2l1l0): a round takes vectors i and i + 8 to 2i and 2i + 1 and
        // rotates the address (row bits, lane bits) left by one; after four, row and lane have swapped
        for (int round = 0; round < 4; round++) {
            FloatVector t0 = ZIP_LO.selectFrom(v0, v8);
            FloatVector t1 = ZIP_HI.selectFrom(v0, v8);
            FloatVector t2 = ZIP_LO.selectFrom(v1, v9);
            FloatVector t3 = ZIP_HI.selectFrom(v1, v9);
            FloatVector t4 = ZIP_LO.selectFrom(v2, v10);
            FloatVector t5 = ZIP_HI.selectFrom(v2, v10);
            FloatVector t6 = ZIP_LO.selectFrom(v3, v11);
            FloatVector t7 = ZIP_HI.selectFrom(v3, v11);
            FloatVector t8 = ZIP_LO.selectFrom(v4, v12);
            FloatVector t9 = ZIP_HI.selectFrom(v4, v12);
            FloatVector t10 = ZIP_LO.selectFrom(v5, v13);
            FloatVector t11 = ZIP_HI.selectFrom(v5, v13);
            FloatVector t12 = ZIP_LO.selectFrom(v6, v14);
            FloatVector t13 = ZIP_HI.selectFrom(v6, v14);
            FloatVector t14 = ZIP_LO.selectFrom(v7, v15);
            FloatVector t15 = ZIP_HI.selectFrom(v7, v15);
            v0 = t0;
            v1 = t1;
            v2 = t2;
            v3 = t3;
            v4 = t4;
            v5 = t5;
            v6 = t6;
            v7 = t7;
            v8 = t8;
            v9 = t9;
            v10 = t10;
            v11 = t11;
            v12 = t12;
            v13 = t13;
            v14 = t14;
            v15 = t15;
        }
        v0.intoArray(dst, doff);
        v1.intoArray(dst, doff + 1 * ds);
        v2.intoArray(dst, doff + 2 * ds);
        v3.intoArray(dst, doff + 3 * ds);
        v4.intoArray(dst, doff + 4 * ds);
        v5.intoArray(dst, doff + 5 * ds);
        v6.intoArray(dst, doff + 6 * ds);
        v7.intoArray(dst, doff + 7 * ds);
        v8.intoArray(dst, doff + 8 * ds);
        v9.intoArray(dst, doff + 9 * ds);
        v10.intoArray(dst, doff + 10 * ds);
        v11.intoArray(dst, doff + 11 * ds);
        v12.intoArray(dst, doff + 12 * ds);
        v13.intoArray(dst, doff + 13 * ds);
        v14.intoArray(dst, doff + 14 * ds);
        v15.intoArray(dst, doff + 15 * ds);
    }

    /** Packs B from a matrix (B is logically K×N; stored K×N, or N×K when transposed, as a linear layer's weight). */
    public static PackB packB(Matrix m) {
        return packB(m, j -> j);
    }

    /**
     * Packs a GEGLU projection's transposed weight (2f × K, the f value rows then the f gate rows) for
     * {@link #multiplyGeglu}: sliver q holds value columns {@code [q·L, q·L + L)}, then the same gate
     * columns.
     */
    public static PackB packBGeglu(Matrix m, int f) {
        if (!m.transposed()) {
            throw new IllegalArgumentException("fused GEGLU takes a linear layer's weight (stored out × in)");
        }
        return packB(m, j -> gegluOrder(j, f));
    }

    /** The stored column (output feature) behind column j of {@link #packBGeglu}'s order. */
    public static int gegluOrder(int j, int f) {
        int q = j / NR;
        int c = j % NR;
        return c < L ? q * L + c : f + q * L + c - L;
    }

    /** Packs B, logical column j being stored column {@code column(j)} (when B is stored transposed). */
    private static PackB packB(Matrix m, java.util.function.IntUnaryOperator column) {
        return (batch, k0, kc, j0, nc, dst, off) -> {
            long base = batch * m.batchStride();
            int slivers = ceilDiv(nc, NR);
            if (!m.transposed()) {
                boolean floats = m.tensor().isFloatArray();
                for (int q = 0; q < slivers; q++) {
                    int qb = off + q * kc * NR;
                    int cols = Math.min(NR, nc - q * NR);
                    long e = base + (long) k0 * m.ld() + j0 + q * NR;
                    for (int k = 0; k < kc; k++, e += m.ld()) {
                        if (floats) {
                            copyRun(m.tensor().floatArray(), (int) (m.tensor().offset() + e), dst, qb + k * NR, NR, 0, cols);
                        } else {
                            m.read(e, dst, qb + k * NR, cols);
                            if (cols < NR) {
                                zeroRun(dst, qb + k * NR + cols, NR - cols);
                            }
                        }
                    }
                }
            } else {
                // each column is a stored row: widen the sliver's rows into a buffer, then gather one k at a time
                Buffers bufs = BUFFERS.get();
                float[] rows = bufs.row(NR * kc);
                int[] lanes = bufs.laneOffsets(kc);
                for (int q = 0; q < slivers; q++) {
                    int qb = off + q * kc * NR;
                    int cols = Math.min(NR, nc - q * NR);
                    for (int j = 0; j < cols; j++) {
                        m.read(base + (long) column.applyAsInt(j0 + q * NR + j) * m.ld() + k0, rows, j * kc, kc);
                    }
                    java.util.Arrays.fill(rows, cols * kc, NR * kc, 0f);
                    int k = 0;
                    if (TRANSPOSE16) {
                        for (; k + L <= kc; k += L) {
                            transpose16(rows, k, kc, L, dst, qb + k * NR, NR);
                            transpose16(rows, k + L * kc, kc, L, dst, qb + k * NR + L, NR);
                        }
                    }
                    for (; k < kc; k++) {
                        FloatVector.fromArray(S, rows, k, lanes, 0).intoArray(dst, qb + k * NR);
                        FloatVector.fromArray(S, rows, k + L * kc, lanes, 0).intoArray(dst, qb + k * NR + L);
                    }
                }
            }
        };
    }

    /**
     * Packs the im2col matrix of a convolution as B without building it: row {@code k = (ci, ky, kx)},
     * column {@code j = (oy, ox)}, value {@code x[n, ci, oy·s + ky − pad, ox·s + kx − pad]} or 0 outside.
     * A sliver's columns are cut once into runs on one output row; each row k then copies every run as
     * a contiguous span (stride 1) or element by element (stride 2), with (ci, ky, kx) stepped, not divided.
     * A span is copied in whole vectors, in increasing column and k order: a run shorter than a multiple
     * of L writes on into the next run's (or row's, or sliver's) slots, which are written after it, and
     * the last sliver's last row up to L − 1 floats past it (the packing buffer has that room at its
     * end). Masked copies of partial vectors cost far more (4.2 ns per element at 8 × 8 on a Zen 5 core,
     * 0.5 ns at 64 × 64).
     */
    public static PackB packIm2col(float[] x, long xOff, int cin, int h, int w, int kh, int kw, int stride, int pad,
                                   int ho, int wo) {
        long imageSize = (long) cin * h * w;
        int plane = h * w;
        int kArea = kh * kw;
        return (batch, k0, kc, j0, nc, dst, off) -> {
            int imgBase = (int) (xOff + batch * imageSize);
            int slivers = ceilDiv(nc, NR);
            int[] runs = BUFFERS.get().runs();
            for (int q = 0; q < slivers; q++) {
                int qb = off + q * kc * NR;
                int colStart = j0 + q * NR;
                int cols = Math.min(NR, nc - q * NR);
                // runs of this sliver's columns on one output row: (first column in the sliver, length, oy, ox)
                int nRuns = 0;
                for (int j = 0; j < cols; ) {
                    int col = colStart + j;
                    int oy = col / wo;
                    int ox = col - oy * wo;
                    int run = Math.min(cols - j, wo - ox);
                    runs[4 * nRuns] = j;
                    runs[4 * nRuns + 1] = run;
                    runs[4 * nRuns + 2] = oy;
                    runs[4 * nRuns + 3] = ox;
                    nRuns++;
                    j += run;
                }
                int ci = k0 / kArea;
                int rem = k0 - ci * kArea;
                int ky = rem / kw;
                int kx = rem - ky * kw;
                if (stride == 1 && nRuns == 1 && cols == NR) {
                    // the sliver is one span of an output row (widths of 32 and more): the common case
                    im2colSpan(x, imgBase + ci * plane, plane, h, w, kh, kw, pad, runs[2], runs[3], ky, kx, kc, dst, qb);
                    continue;
                }
                for (int k = 0; k < kc; k++) {
                    int chanBase = imgBase + ci * plane;
                    int d = qb + k * NR;
                    for (int t = 0; t < nRuns; t++) {
                        int dj = d + runs[4 * t];
                        int run = runs[4 * t + 1];
                        int iy = runs[4 * t + 2] * stride + ky - pad;
                        int ox = runs[4 * t + 3];
                        if (iy < 0 || iy >= h) {
                            zeroSpan(dst, dj, run);
                        } else if (stride == 1) {
                            int ix0 = ox + kx - pad;
                            copySpan(x, chanBase + iy * w + ix0, ix0, w, run, dst, dj);
                        } else {
                            int rowBase = chanBase + iy * w;
                            for (int i = 0; i < run; i++) {
                                int ix = (ox + i) * stride + kx - pad;
                                dst[dj + i] = (ix >= 0 && ix < w) ? x[rowBase + ix] : 0f;
                            }
                        }
                    }
                    if (cols < NR) {
                        zeroRun(dst, d + cols, NR - cols);
                    }
                    if (++kx == kw) {
                        kx = 0;
                        if (++ky == kh) {
                            ky = 0;
                            ci++;
                        }
                    }
                }
            }
        };
    }

    /**
     * The rows of a sliver that is one span of NR columns of output row {@code oy} from column
     * {@code ox} (stride 1), for kc values of k from (ky, kx) of the channel at {@code chanBase}: the
     * general loop of {@link #packIm2col} without its runs.
     */
    private static void im2colSpan(float[] x, int chanBase, int plane, int h, int w, int kh, int kw, int pad, int oy,
                                   int ox, int ky, int kx, int kc, float[] dst, int qb) {
        for (int k = 0, d = qb; k < kc; k++, d += NR) {
            int iy = oy + ky - pad;
            int ix0 = ox + kx - pad;
            if (iy < 0 || iy >= h) {
                zeroSpan(dst, d, NR);
            } else {
                copySpan(x, chanBase + iy * w + ix0, ix0, w, NR, dst, d);
            }
            if (++kx == kw) {
                kx = 0;
                if (++ky == kh) {
                    ky = 0;
                    chanBase += plane;
                }
            }
        }
    }

    /**
     * One row's span of a stride-1 im2col: {@code dst[dj + i] = x[s + i]} for i below {@code run}, where
     * {@code s} is column {@code ix0} of an image row of width w, 0 for the columns outside the row (the
     * padding). Whole vectors, the padding columns (read from the neighbouring rows) zeroed after them;
     * the last vector may write up to L − 1 floats past the run. Masked at the ends of the array.
     */
    private static void copySpan(float[] x, int s, int ix0, int w, int run, float[] dst, int dj) {
        if (s >= 0 && s + roundUp(run, L) <= x.length) {
            for (int i = 0; i < run; i += L) {
                FloatVector.fromArray(S, x, s + i).intoArray(dst, dj + i);
            }
            for (int i = 0; i < Math.min(run, -ix0); i++) {
                dst[dj + i] = 0f;
            }
            for (int i = Math.max(0, w - ix0); i < run; i++) {
                dst[dj + i] = 0f;
            }
        } else {
            int lo = Math.min(run, Math.max(0, -ix0));
            copyRun(x, s, dst, dj, run, lo, Math.max(lo, Math.min(run, w - ix0)));
        }
    }

    /** {@code dst[dj .. dj + run) = 0} in whole vectors (up to L − 1 floats past the run). */
    private static void zeroSpan(float[] dst, int dj, int run) {
        FloatVector zero = FloatVector.zero(S);
        for (int i = 0; i < run; i += L) {
            zero.intoArray(dst, dj + i);
        }
    }

    /**
     * {@code dst[dj + i] = src[s + i]} for i in [lo, hi), 0 for the other i below {@code run} (at most
     * NR); only elements {@code src[s + lo .. s + hi)} are read.
     */
    private static void copyRun(float[] src, int s, float[] dst, int dj, int run, int lo, int hi) {
        if (lo == 0 && hi == NR) {
            FloatVector.fromArray(S, src, s).intoArray(dst, dj);
            FloatVector.fromArray(S, src, s + L).intoArray(dst, dj + L);
            return;
        }
        for (int h = 0; h < run; h += L) {
            // lanes outside [lo, hi) load as 0; the store stops at the end of the run
            FloatVector.fromArray(S, src, s + h, S.indexInRange(h - lo, hi - lo))
                    .intoArray(dst, dj + h, S.indexInRange(h, run));
        }
    }

    /** {@code dst[dj .. dj + n) = 0} for n at most NR. */
    private static void zeroRun(float[] dst, int dj, int n) {
        FloatVector zero = FloatVector.zero(S);
        for (int h = 0; h < n; h += L) {
            zero.intoArray(dst, dj + h, S.indexInRange(h, n));
        }
    }

    static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    static int roundUp(int a, int b) {
        return ceilDiv(a, b) * b;
    }

    /** Per-thread packing buffers, grown on demand and reused. */
    private static final class Buffers {
        private float[] a = new float[0];
        private float[] b = new float[0];
        private float[] row = new float[0];
        private float[] strip = new float[0];
        private final float[] tile = new float[MR * NR];
        private final float[] zeros = new float[NR];
        private final float[] rowBias = new float[MR * NR];
        private final int[] runs = new int[4 * NR];
        private final Strides rowOffsets = new Strides(MR);
        private final Strides laneOffsets = new Strides(L);

        /** Room for n floats of A panels and the L floats that {@link PackA} may write past them. */
        float[] a(int n) {
            if (a.length < n + L) {
                a = new float[n + L];
            }
            return a;
        }

        /** Room for n floats of B slivers and the L floats that {@link #packIm2col} may write past them. */
        float[] b(int n) {
            if (b.length < n + L) {
                b = new float[n + L];
            }
            return b;
        }

        float[] row(int n) {
            if (row.length < n) {
                row = new float[n];
            }
            return row;
        }

        float[] tile() {
            return tile;
        }

        /** Room for a task's strip of C: its rows by one sliver. */
        float[] strip(int n) {
            if (strip.length < n) {
                strip = new float[n];
            }
            return strip;
        }

        /** NR zeros (never written). */
        float[] zeros() {
            return zeros;
        }

        /** A tile whose row r is {@code bias[row + r]} repeated (0 past the bias's end). */
        float[] rowBias(float[] bias, int row) {
            for (int r = 0; r < MR; r++) {
                java.util.Arrays.fill(rowBias, r * NR, (r + 1) * NR, row + r < bias.length ? bias[row + r] : 0f);
            }
            return rowBias;
        }

        /** Room for the runs of one sliver's columns (at most NR runs of 4 ints). */
        int[] runs() {
            return runs;
        }

        /** {@code r·ld} for each lane r: gather offsets of L rows. */
        int[] laneOffsets(int ld) {
            return laneOffsets.of(ld);
        }

        /** {@code r·ld} for each lane r below MR (0 above): gather offsets of a panel's rows. */
        int[] rowOffsets(int ld) {
            return rowOffsets.of(ld);
        }
    }

    /** {@code r·ld} for r below a count, 0 for the other lanes of a vector; rebuilt when ld changes. */
    private static final class Strides {
        private final int[] offsets = new int[Math.max(L, MR)];
        private final int count;
        private int ld = -1;

        Strides(int count) {
            this.count = count;
        }

        int[] of(int newLd) {
            if (ld != newLd) {
                for (int r = 0; r < count; r++) {
                    offsets[r] = r * newLd;
                }
                ld = newLd;
            }
            return offsets;
        }
    }
}
