// WMMA for the CUDA emulator (see cuda_emu.h): every thread of a warp holds the whole tile, which is
// a legal mapping of fragment elements as long as kernels use only the collective operations (and
// element-wise work that treats every element alike); each stores its share of it. Checks what the
// real API demands of pointers and leading dimensions (256-bit alignment, multiples of 16 bytes).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include "cuda_emu.h"

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K> struct shape_of;
template <int M, int N, int K> struct shape_of<matrix_a, M, N, K> { static constexpr int rows = M, cols = K; };
template <int M, int N, int K> struct shape_of<matrix_b, M, N, K> { static constexpr int rows = K, cols = N; };
template <int M, int N, int K> struct shape_of<accumulator, M, N, K> { static constexpr int rows = M, cols = N; };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    static constexpr int rows = shape_of<Use, M, N, K>::rows;
    static constexpr int cols = shape_of<Use, M, N, K>::cols;
    static constexpr int num_elements = rows * cols;
    T x[num_elements];
};

inline float to_float(float v) { return v; }
inline float to_float(__half v) { return __half2float(v); }
inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> inline void check(const T* p, unsigned ldm) {
    if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0) {
        emu::fail("wmma: pointer not 256-bit aligned");
    }
    if ((ldm * sizeof(T)) % 16 != 0) {
        emu::fail("wmma: leading dimension not a multiple of 16 bytes");
    }
}

template <class Use, int M, int N, int K, class T, class Layout, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, V v) {
    for (int i = 0; i < f.num_elements; i++) {
        f.x[i] = T(v);
    }
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
    check(p, ldm);
    constexpr bool rowMajor = std::is_same<Layout, row_major>::value;
    for (int r = 0; r < f.rows; r++) {
        for (int c = 0; c < f.cols; c++) {
            f.x[r * f.cols + c] = rowMajor ? p[(long) r * ldm + c] : p[(long) c * ldm + r];
        }
    }
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t layout) {
    check(p, ldm);
    for (int r = 0; r < f.rows; r++) {
        for (int c = 0; c < f.cols; c++) {
            f.x[r * f.cols + c] = layout == mem_row_major ? p[(long) r * ldm + c] : p[(long) c * ldm + r];
        }
    }
}

// each lane stores its share of the tile (every 32nd element), as the hardware's lanes store the
// elements of their fragments: a lane that stores before the others have caught up (a missing
// barrier) leaves its share of the tile as it saw it, instead of being overwritten by later lanes
template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
    check(p, ldm);
    int lane = emu::lane();
    for (int r = 0; r < f.rows; r++) {
        for (int c = 0; c < f.cols; c++) {
            if ((r * f.cols + c) % 32 != lane) {
                continue;
            }
            (layout == mem_row_major ? p[(long) r * ldm + c] : p[(long) c * ldm + r]) = f.x[r * f.cols + c];
        }
    }
}

// D = A B + C with float32 accumulation (the products of F16/BF16 operands are exact in float32);
// computed once per warp (see emu::memo_get)
template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    struct {
        T a[M * K];
        T b[K * N];
        float c[M * N];
    } in;
    std::memcpy(in.a, a.x, sizeof in.a);
    std::memcpy(in.b, b.x, sizeof in.b);
    std::memcpy(in.c, c.x, sizeof in.c);
    float out[M * N];
    if (!emu::memo_get(&in, sizeof in, out, sizeof out)) {
        float af[M * K];
        float bf[K * N];
        for (int i = 0; i < M * K; i++) {
            af[i] = to_float(in.a[i]);
        }
        for (int i = 0; i < K * N; i++) {
            bf[i] = to_float(in.b[i]);
        }
        for (int i = 0; i < M; i++) {
            float row[N];
            for (int j = 0; j < N; j++) {
                row[j] = in.c[i * N + j];
            }
            for (int k = 0; k < K; k++) {
                float x = af[i * K + k];
                for (int j = 0; j < N; j++) {
                    row[j] += x * bf[k * N + j];
                }
            }
            for (int j = 0; j < N; j++) {
                out[i * N + j] = row[j];
            }
        }
        emu::memo_put(&in, sizeof in, out, sizeof out);
    }
    std::memcpy(d.x, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda
