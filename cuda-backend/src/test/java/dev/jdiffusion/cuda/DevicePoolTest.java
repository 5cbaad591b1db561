package dev.jdiffusion.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The device memory pool against a fake allocator that records every device call. */
class DevicePoolTest {
    private static final class FakeDevice implements DevicePool.Allocator<Long> {
        long next = 0x1000;
        final Set<Long> live = new HashSet<>();
        int allocations;
        int frees;

        @Override
        public Long allocate(long bytes) {
            long a = next;
            next += bytes;
            live.add(a);
            allocations++;
            return a;
        }

        @Override
        public void free(Long address) {
            assertTrue(live.remove(address), "freed twice or never allocated: " + address);
            frees++;
        }
    }

    @Test
    void sizeClassesRoundUp() {
        assertEquals(256, DevicePool.sizeClass(0));
        assertEquals(256, DevicePool.sizeClass(256));
        assertEquals(512, DevicePool.sizeClass(257));
        assertEquals(1 << 20, DevicePool.sizeClass((1 << 20) - 5));
        assertEquals(2 << 20, DevicePool.sizeClass((1 << 20) + 1));
        assertEquals(4 << 20, DevicePool.sizeClass((2 << 20) + 1));
        assertEquals(6 << 20, DevicePool.sizeClass((4 << 20) + 1), "multiples of 2 MiB above 2 MiB");
        assertThrows(IllegalArgumentException.class, () -> DevicePool.sizeClass(-1));
    }

    @Test
    void aRepeatedStepAllocatesOnTheDeviceOnlyOnce() {
        FakeDevice dev = new FakeDevice();
        try (DevicePool<Long> pool = new DevicePool<>(dev)) {
            long[] sizes = {4 * 2 * 4 * 64 * 64, 4L * 2 * 320 * 64 * 64, 1000, 4L * 2 * 77 * 768, 3 << 20};
            for (int step = 0; step < 20; step++) {
                Long[] held = new Long[sizes.length];
                for (int i = 0; i < sizes.length; i++) {
                    held[i] = pool.acquire(sizes[i]);
                }
                for (Long a : held) {
                    pool.release(a);
                }
            }
            assertEquals(sizes.length, dev.allocations, "one device allocation per size, in the first step");
            assertEquals(sizes.length, pool.allocations());
            assertEquals(0, pool.inUse());
            assertTrue(pool.reserved() >= java.util.Arrays.stream(sizes).sum());
        }
        assertEquals(dev.allocations, dev.frees, "closing frees everything");
        assertTrue(dev.live.isEmpty());
    }

    @Test
    void blocksInUseAreNeverHandedOutTwiceAndMisuseIsReported() {
        FakeDevice dev = new FakeDevice();
        try (DevicePool<Long> pool = new DevicePool<>(dev)) {
            Long a = pool.acquire(1000);
            Long b = pool.acquire(1000);
            assertNotEquals(a, b);
            pool.release(a);
            assertEquals(a, pool.acquire(900), "the freed block of the same class comes back");
            pool.release(b);
            assertThrows(IllegalStateException.class, () -> pool.release(b));
            assertThrows(IllegalArgumentException.class, () -> pool.release(12345L));
            pool.trim();
            assertEquals(1, dev.frees, "trim frees the free block, not the one in use");
            assertEquals(1024, pool.reserved());
        }
    }
}
