// The CUDA emulator's runtime (see cuda_emu.h): fibers for a block's threads, barriers and shuffles
// between them, blocks spread over host threads, and the launch entry point the Java side calls.
#include "cuda_emu.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emu_kernels.h"

#if !defined(__x86_64__)
#error "the CUDA emulator switches fibers with x86-64 code"
#endif

// Saves the callee-saved registers and the SSE/x87 control words on the current stack, stores the
// stack pointer in *from, and continues where `to` was saved (a fiber or the scheduler). swapcontext
// would do the same with two system calls per switch for the signal mask.
extern "C" void emu_switch(void** from, void* to);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .section .note.GNU-stack, "", @progbits
    .text
)");

namespace emu {
thread_local emu_dim3 block_idx;
thread_local emu_dim3 block_dim;
thread_local emu_dim3 grid_dim;

namespace {
constexpr size_t STACK = 256 * 1024;

enum State { RUNNING, AT_BLOCK, AT_WARP, DONE };

struct Fiber {
    void* sp;
    unsigned long calls;
    emu_dim3 tid;
    int index;
    State state;
    float value;
    int source;
    float result;
};

struct Block {
    std::vector<Fiber> fibers;
    bool poison = false;
    std::size_t dynamicShared = 0;
    // the shared variables already poisoned in this block
    std::vector<void*> poisoned;
    char* stacks = nullptr;
    size_t stackBytes = 0;
    void* scheduler;
    int live;
    int atBlock;
    std::vector<int> warpLive;
    std::vector<int> warpAt;
    Kernel kernel;
    void** args;
    // per warp: lane 0's collective results by call number, with their inputs
    std::vector<std::vector<std::pair<std::vector<char>, std::vector<char>>>> memo;
};

thread_local Block* block;
thread_local Fiber* self;

std::mutex errors;
std::string firstError;

void releaseBlock(Block& b) {
    if (b.atBlock > 0 && b.atBlock == b.live) {
        for (Fiber& f : b.fibers) {
            if (f.state == AT_BLOCK) {
                f.state = RUNNING;
            }
        }
        b.atBlock = 0;
        for (auto& m : b.memo) {
            m.clear();
        }
        for (Fiber& f : b.fibers) {
            f.calls = 0;
        }
    }
}

void releaseWarp(Block& b, int w) {
    if (b.warpAt[w] == 0 || b.warpAt[w] != b.warpLive[w]) {
        return;
    }
    int first = w * 32;
    int last = std::min<int>(first + 32, (int) b.fibers.size());
    for (int i = first; i < last; i++) {
        Fiber& f = b.fibers[i];
        if (f.state != AT_WARP) {
            continue;
        }
        int s = f.source;
        if (s >= 0) {
            f.result = s >= first && s < last && b.fibers[s].state == AT_WARP && b.fibers[s].source >= 0
                    ? b.fibers[s].value : f.value;
        }
    }
    for (int i = first; i < last; i++) {
        if (b.fibers[i].state == AT_WARP) {
            b.fibers[i].state = RUNNING;
        }
    }
    b.warpAt[w] = 0;
    b.memo[w].clear();
    for (int i = first; i < last; i++) {
        b.fibers[i].calls = 0;
    }
}

void yield() {
    emu_switch(&self->sp, block->scheduler);
}

// where a fiber starts (entered by emu_switch's ret); never returns
[[noreturn]] void entry() {
    Block& b = *block;
    b.kernel(b.args);
    Fiber& me = *self;
    me.state = DONE;
    b.live--;
    b.warpLive[me.index / 32]--;
    releaseBlock(b);
    releaseWarp(b, me.index / 32);
    emu_switch(&me.sp, b.scheduler);
    __builtin_unreachable();
}

// a fresh fiber's stack as emu_switch leaves it: control words, six registers, then entry as the
// return address at a 16-byte boundary (so that entry starts as if called)
void* start(char* stack, size_t bytes) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
    auto* slot = reinterpret_cast<std::uint64_t*>(top - 16);
    slot[1] = 0;
    slot[0] = reinterpret_cast<std::uint64_t>(&entry);
    std::uint64_t* sp = slot - 7;
    for (int i = 1; i < 7; i++) {
        sp[i] = 0;
    }
    std::uint32_t csr;
    std::uint16_t cw;
    asm volatile("stmxcsr %0" : "=m"(csr));
    asm volatile("fnstcw %0" : "=m"(cw));
    sp[0] = csr | (std::uint64_t) cw << 32;
    return sp;
}

// Runs a block's threads to completion. Between two barriers each thread runs alone, one after the
// other, in index order or (reverse) the opposite: two threads that touch the same memory between
// barriers, one of them writing, meet in opposite orders in the two runs, so a race changes the result.
void runBlock(Block& b, int threads, bool reverse) {
    size_t need = (size_t) threads * STACK;
    if (b.stackBytes < need) {
        if (b.stacks != nullptr) {
            munmap(b.stacks, b.stackBytes);
        }
        void* m = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            b.stacks = nullptr;
            b.stackBytes = 0;
            fail("no memory for the fibers' stacks");
            return;
        }
        b.stacks = static_cast<char*>(m);
        b.stackBytes = need;
    }
    b.fibers.assign(threads, Fiber{});
    b.poisoned.clear();
    b.live = threads;
    b.atBlock = 0;
    int warps = (threads + 31) / 32;
    b.warpLive.assign(warps, 0);
    b.warpAt.assign(warps, 0);
    b.memo.assign(warps, {});
    for (int i = 0; i < threads; i++) {
        Fiber& f = b.fibers[i];
        f.index = i;
        f.tid.x = i % block_dim.x;
        f.tid.y = i / block_dim.x % block_dim.y;
        f.tid.z = i / (block_dim.x * block_dim.y);
        f.state = RUNNING;
        b.warpLive[i / 32]++;
        f.sp = start(b.stacks + (size_t) i * STACK, STACK);
    }
    int done = 0;
    while (done < threads) {
        bool ran = false;
        done = 0;
        for (int n = 0; n < threads; n++) {
            Fiber& f = b.fibers[reverse ? threads - 1 - n : n];
            if (f.state == RUNNING) {
                self = &f;
                emu_switch(&b.scheduler, f.sp);
                ran = true;
            }
            if (f.state == DONE) {
                done++;
            }
        }
        if (!ran && done < threads) {
            fail("deadlock: threads wait at barriers that the others never reach");
            break;
        }
    }
}
}  // namespace

const emu_dim3& thread_idx() {
    return self->tid;
}

int lane() {
    return self->index % 32;
}

void sync_block() {
    Block& b = *block;
    self->state = AT_BLOCK;
    b.atBlock++;
    releaseBlock(b);
    yield();
}

void sync_warp() {
    Block& b = *block;
    self->state = AT_WARP;
    self->source = -1;
    int w = self->index / 32;
    b.warpAt[w]++;
    releaseWarp(b, w);
    yield();
}

float shuffle(float v, int source) {
    Block& b = *block;
    Fiber& me = *self;
    me.state = AT_WARP;
    me.value = v;
    me.source = (me.index / 32) * 32 + source;
    int w = me.index / 32;
    b.warpAt[w]++;
    releaseWarp(b, w);
    yield();
    return me.result;
}

bool memo_get(const void* in, std::size_t inBytes, void* out, std::size_t outBytes) {
    Fiber& me = *self;
    auto& memo = block->memo[me.index / 32];
    unsigned long call = me.calls++;
    if (call >= memo.size()) {
        return false;
    }
    auto& [input, output] = memo[call];
    if (input.size() != inBytes || output.size() != outBytes || std::memcmp(input.data(), in, inBytes) != 0) {
        return false;
    }
    std::memcpy(out, output.data(), outBytes);
    return true;
}

void memo_put(const void* in, std::size_t inBytes, const void* out, std::size_t outBytes) {
    Fiber& me = *self;
    auto& memo = block->memo[me.index / 32];
    // the first lane to make this call (memo_get counted it); a lane whose inputs differed keeps its own
    if (me.calls - 1 != memo.size()) {
        return;
    }
    const char* i = static_cast<const char*>(in);
    const char* o = static_cast<const char*>(out);
    memo.emplace_back(std::vector<char>(i, i + inBytes), std::vector<char>(o, o + outBytes));
}

void poison_shared(void* p, std::size_t bytes) {
    Block& b = *block;
    if (!b.poison || std::find(b.poisoned.begin(), b.poisoned.end(), p) != b.poisoned.end()) {
        return;
    }
    b.poisoned.push_back(p);
    std::memset(p, 0xFF, bytes);
}

std::size_t dynamic_shared_bytes() {
    return block->dynamicShared;
}

void fail(const char* what) {
    std::lock_guard<std::mutex> lock(errors);
    if (firstError.empty()) {
        firstError = what;
    }
}
}  // namespace emu

extern "C" {
const char* emu_error() {
    return emu::firstError.c_str();
}

// Runs a kernel to completion, each block's threads in index order or, with reverse, the opposite
// (see runBlock), the blocks in reverse too, and each block's shared memory poisoned (see
// poison_shared): 0, or -1 with emu_error() saying why.
int emu_launch(const char* name, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, void** args, int count,
               int reverse) {
    {
        std::lock_guard<std::mutex> lock(emu::errors);
        emu::firstError.clear();
    }
    const emu::KernelEntry* k = nullptr;
    for (const emu::KernelEntry& e : emu::KERNELS) {
        if (std::strcmp(e.name, name) == 0) {
            k = &e;
        }
    }
    if (k == nullptr) {
        emu::fail((std::string("no kernel ") + name).c_str());
        return -1;
    }
    if (k->arity != count) {
        emu::fail((std::string(name) + ": " + std::to_string(count) + " arguments for " + std::to_string(k->arity)
                   + " parameters").c_str());
        return -1;
    }
    int threads = bx * by * bz;
    if (threads < 1 || threads > 1024 || sharedBytes > 48 * 1024 || gx < 1 || gy < 1 || gz < 1) {
        emu::fail("launch outside the limits (1..1024 threads, 48 KiB shared memory)");
        return -1;
    }
    long blocks = (long) gx * gy * gz;
    std::atomic<long> next{0};
    // reversed, the blocks are taken from the last: blocks that write the same memory then do so in
    // roughly the opposite order to the forward runs
    int workers = (int) std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), (unsigned) blocks));
    auto work = [&]() {
        emu::Block b;
        b.kernel = k->run;
        b.args = args;
        b.poison = reverse != 0;
        b.dynamicShared = (std::size_t) sharedBytes;
        emu::block = &b;
        emu::grid_dim = {(unsigned) gx, (unsigned) gy, (unsigned) gz};
        emu::block_dim = {(unsigned) bx, (unsigned) by, (unsigned) bz};
        long i;
        while ((i = next.fetch_add(1)) < blocks) {
            if (reverse) {
                i = blocks - 1 - i;
            }
            emu::block_idx = {(unsigned) (i % gx), (unsigned) (i / gx % gy), (unsigned) (i / ((long) gx * gy))};
            emu::runBlock(b, threads, reverse != 0);
        }
        if (b.stacks != nullptr) {
            munmap(b.stacks, b.stackBytes);
        }
    };
    // the blocks' fibers switch stacks: on threads of their own, never on the caller's (a JVM thread)
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; w++) {
        pool.emplace_back(work);
    }
    for (std::thread& t : pool) {
        t.join();
    }
    return emu::firstError.empty() ? 0 : -1;
}
}
