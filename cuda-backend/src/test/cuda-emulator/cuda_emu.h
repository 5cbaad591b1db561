// The CUDA emulator's view of the kernels: compiles jdiffusion's .cu sources as host C++ so that the
// backend's tests can run its kernels' arithmetic without a GPU. Every CUDA thread of a block is a
// fiber; __syncthreads, __syncwarp and warp shuffles switch between them; blocks run on host
// threads, each block's __shared__ memory being that host thread's. Test code only: it checks the
// kernels' indexing and arithmetic, not their speed, and not what only a GPU shows (the WMMA
// fragments' element-to-lane mapping); races and reads of unwritten shared memory show only as a
// difference between the forward and the reversed device (see emu_launch).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math_constants.h>

struct emu_dim3 {
    unsigned x = 0, y = 0, z = 0;
};

namespace emu {
extern thread_local emu_dim3 block_idx;
extern thread_local emu_dim3 block_dim;
extern thread_local emu_dim3 grid_dim;
const emu_dim3& thread_idx();
void sync_block();
void sync_warp();
float shuffle(float v, int lane);
int lane();
void fail(const char* what);
// A warp's collective results, computed once: the lanes of a warp run one after another between
// barriers, and the first lane to make its n-th call computes it; the others take its result when
// their inputs are the same (they differ only if a kernel treats lanes' fragments differently: then
// each computes).
bool memo_get(const void* in, std::size_t inBytes, void* out, std::size_t outBytes);
void memo_put(const void* in, std::size_t inBytes, const void* out, std::size_t outBytes);
// A block's shared variable as the hardware leaves it, undefined: on the reversed device (see
// emu_launch) every byte 0xFF (NaN as F32, F16 and BF16; -1 as an int) the first time a thread of
// the block reaches its declaration, so that a kernel that reads what it never wrote computes
// something else there; elsewhere left as the block before left it.
void poison_shared(void* p, std::size_t bytes);
// the dynamic shared memory the launch asked for, in bytes
std::size_t dynamic_shared_bytes();
}  // namespace emu

// appended by the emulator's build to every __shared__ declaration of the kernels' sources
#define EMU_POISON(name) emu::poison_shared(name, sizeof(name));
#define EMU_POISON_DYNAMIC(name) emu::poison_shared(name, emu::dynamic_shared_bytes());

// the CUDA language as host C++: __shared__ storage is the host thread's (a block's fibers share it)
#undef __shared__
#define __shared__ thread_local
#define __launch_bounds__(...)
#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define warpSize 32

inline void __syncthreads() { emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::sync_warp(); }
inline float __shfl_xor_sync(unsigned, float v, int mask, int width = 32) {
    int l = emu::lane();
    return emu::shuffle(v, (l & ~(width - 1)) | ((l ^ mask) & (width - 1)));
}
inline float __shfl_down_sync(unsigned, float v, unsigned delta, int width = 32) {
    int l = emu::lane();
    int base = l & ~(width - 1);
    int src = l + (int) delta;
    return emu::shuffle(v, src < base + width ? src : l);
}

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

template <class A, class B> inline auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
template <class A, class B> inline auto max(A a, B b) -> decltype(a + b) { return a < b ? b : a; }
