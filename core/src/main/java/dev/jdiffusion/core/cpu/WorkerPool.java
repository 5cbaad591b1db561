package dev.jdiffusion.core.cpu;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A fixed set of worker threads that run the tasks {@code 0..n-1} of one parallel loop; the calling
 * thread works too. Tasks are handed out dynamically, so which thread runs a task varies, but every
 * op partitions its work so that each output element is computed by exactly one task in a fixed
 * order: results do not depend on the number of threads.
 *
 * <p>Several threads may use one pool at the same time. A parallel loop started from inside a task
 * runs inline on that thread.
 */
public final class WorkerPool implements AutoCloseable {
    private static final ThreadLocal<Boolean> IN_TASK = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private final int threads;
    private final ExecutorService executor;

    public WorkerPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        if (threads == 1) {
            executor = null;
        } else {
            AtomicInteger counter = new AtomicInteger();
            ThreadFactory factory = r -> {
                Thread t = new Thread(r, "jdiffusion-cpu-" + counter.incrementAndGet());
                t.setDaemon(true);
                return t;
            };
            executor = Executors.newFixedThreadPool(threads - 1, factory);
        }
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code body} for every task index in {@code [0, n)} and returns when all have finished. */
    public void parallelFor(int n, IntConsumer body) {
        if (n <= 0) {
            return;
        }
        if (executor == null || n == 1 || IN_TASK.get()) {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
            return;
        }
        Job job = new Job(n, body, Thread.currentThread());
        int helpers = Math.min(threads - 1, n - 1);
        for (int h = 0; h < helpers; h++) {
            executor.execute(job::work);
        }
        job.work();
        while (job.done.get() < n) {
            LockSupport.park(job);
        }
        Throwable error = job.error.get();
        if (error instanceof RuntimeException re) {
            throw re;
        }
        if (error instanceof Error e) {
            throw e;
        }
        if (error != null) {
            throw new IllegalStateException(error);
        }
    }

    @Override
    public void close() {
        if (executor != null) {
            executor.shutdownNow();
        }
    }

    private static final class Job {
        final int n;
        final IntConsumer body;
        final Thread caller;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicReference<Throwable> error = new AtomicReference<>();

        Job(int n, IntConsumer body, Thread caller) {
            this.n = n;
            this.body = body;
            this.caller = caller;
        }

        void work() {
            boolean outer = IN_TASK.get();
            IN_TASK.set(Boolean.TRUE);
            try {
                int i;
                while ((i = next.getAndIncrement()) < n) {
                    try {
                        if (error.get() == null) {
                            body.accept(i);
                        }
                    } catch (Throwable t) {
                        error.compareAndSet(null, t);
                    } finally {
                        if (done.incrementAndGet() == n) {
                            LockSupport.unpark(caller);
                        }
                    }
                }
            } finally {
                IN_TASK.set(outer);
            }
        }
    }
}
