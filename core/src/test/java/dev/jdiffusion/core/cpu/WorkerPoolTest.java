package dev.jdiffusion.core.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class WorkerPoolTest {

    @Test
    void runsEveryTaskOnceAndNestsInline() {
        try (WorkerPool pool = new WorkerPool(2)) {
            AtomicIntegerArray hits = new AtomicIntegerArray(1000);
            pool.parallelFor(100, i -> pool.parallelFor(10, j -> hits.incrementAndGet(i * 10 + j)));
            for (int i = 0; i < 1000; i++) {
                assertEquals(1, hits.get(i), "task " + i);
            }
        }
    }

    @Test
    void failuresReachTheCaller() {
        try (WorkerPool pool = new WorkerPool(3)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pool.parallelFor(50, i -> {
                if (i == 37) {
                    throw new IllegalArgumentException("task 37");
                }
            }));
            assertEquals("task 37", e.getMessage());
            // the pool still works afterwards
            AtomicIntegerArray hits = new AtomicIntegerArray(10);
            pool.parallelFor(10, hits::incrementAndGet);
            assertEquals(1, hits.get(9));
        }
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool(0));
    }
}
