// jdiffusion CUDA kernels: matrix products, convolution as an implicit GEMM, and attention.
// Two kinds of matrix product: on the CUDA cores in float32 (operands of any storage type converted
// as they are loaded into shared memory), and on the tensor cores (WMMA 16x16x16, F16 or BF16
// operands, float32 accumulation) for products with F16/BF16 weights. Each product may add a
// residual (a tensor laid out as its output) in its epilogue, after the bias, so that a layer's
// output joins the residual stream without a separate pass. Attention: in float32 on the CUDA cores,
// or flash-style on the tensor cores.

#include <mma.h>
#include "common.cuh"

#define BM 64
#define BN 64
#define BK 16
#define GEMM_THREADS 256

// Element (r, c) of a matrix stored row-major as rows x cols (trans = 0) or cols x rows (trans = 1):
// A (m, k) and B (k, n) alike.
struct Matrix {
    static constexpr bool kTables = false;  // no index tables to fill (see Im2col)
    const void* p;
    int type;
    long offset;
    int ld;
    int trans;
    __device__ float at(int r, int c) const {
        return load_value(p, offset + (trans ? (long) c * ld + r : (long) r * ld + c), type);
    }
    // whether consecutive columns are adjacent in memory (the faster index for coalesced loads)
    __device__ bool colsAdjacent() const {
        return !trans;
    }
};

// B (k, n) of a convolution's input read as im2col: k = (ci, ky, kx), n = (oy, ox). The divisions
// that split k and n are not made per element: the tile fills two tables in shared memory, one per
// block for its columns (where each output position's window starts) and one per depth step for its
// rows (channel and kernel offsets), and at() adds the two.
struct Im2col {
    static constexpr bool kTables = true;
    const float* x;
    int h, w, kh, kw, stride, pad, ow;
    int* cols;  // 2 per column of the tile: oy * stride - pad, ox * stride - pad
    int* rows;  // 3 per row of the depth step: ci, ky, kx
    int n0 = 0;
    int k0 = 0;
    // the table of columns [start, start + count); the caller synchronises before at()
    __device__ void columns(int start, int count) {
        n0 = start;
        for (int i = threadIdx.x; i < count; i += blockDim.x) {
            int n = start + i;
            int oy = n / ow;
            cols[2 * i] = oy * stride - pad;
            cols[2 * i + 1] = (n - oy * ow) * stride - pad;
        }
    }
    // the table of rows [start, start + count); the caller synchronises before at()
    __device__ void depth(int start, int count) {
        k0 = start;
        for (int i = threadIdx.x; i < count; i += blockDim.x) {
            int k = start + i;
            int ci = k / (kh * kw);
            int r = k - ci * kh * kw;
            int ky = r / kw;
            rows[3 * i] = ci;
            rows[3 * i + 1] = ky;
            rows[3 * i + 2] = r - ky * kw;
        }
    }
    // k in the current depth step's rows, n in the block's columns
    __device__ float at(int k, int n) const {
        const int* row = rows + 3 * (k - k0);
        const int* col = cols + 2 * (n - n0);
        int iy = col[0] + row[1];
        int ix = col[1] + row[2];
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
            return 0.0f;
        }
        return x[((long) row[0] * h + iy) * w + ix];
    }
    __device__ bool colsAdjacent() const {
        return true;
    }
};

// One 64 x 64 tile of C = A B (+ bias over rows or columns) (+ R, laid out as C): 256 threads, 4 x 4
// outputs each. The residual R is added after the bias, as a separate add would.
template <class A, class B>
__device__ void gemm_tile(const A& a, B& b, float* c, int ldc, int m, int n, int k, const void* bias, int biasType,
                          int biasOverRows, const float* residual) {
    __shared__ float as[BK][BM + 4];
    __shared__ float bs[BK][BN + 4];
    int tid = threadIdx.x;
    int m0 = blockIdx.y * BM;
    int n0 = blockIdx.x * BN;
    int tr = (tid / 16) * 4;
    int tc = (tid % 16) * 4;
    float acc[4][4] = {};
    if constexpr (B::kTables) {
        b.columns(n0, BN);
    }
    for (int k0 = 0; k0 < k; k0 += BK) {
        if constexpr (B::kTables) {
            // the last step's reads of the table ended before its closing barrier
            b.depth(k0, BK);
            __syncthreads();
        }
        for (int i = tid; i < BM * BK; i += GEMM_THREADS) {
            int kk = i % BK;
            int mm = i / BK;
            as[kk][mm] = (m0 + mm < m && k0 + kk < k) ? a.at(m0 + mm, k0 + kk) : 0.0f;
            int nn = i % BN;
            int kb = i / BN;
            bs[kb][nn] = (n0 + nn < n && k0 + kb < k) ? b.at(k0 + kb, n0 + nn) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float av[4];
            float bv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                av[i] = as[kk][tr + i];
                bv[i] = bs[kk][tc + i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int row = m0 + tr + i;
        if (row >= m) {
            continue;
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int col = n0 + tc + j;
            if (col < n) {
                float v = acc[i][j];
                if (bias != nullptr) {
                    v += load_value(bias, biasOverRows ? row : col, biasType);
                }
                if (residual != nullptr) {
                    v += residual[(long) row * ldc + col];
                }
                c[(long) row * ldc + col] = v;
            }
        }
    }
}

// Batched C[z] = op(A[z]) op(B[z]) (+ bias[n]) (+ R[z], laid out as C[z]; R may be null); a batch
// stride of 0 shares an operand.
// grid (ceil(n / 64), ceil(m / 64), batch), 256 threads.
extern "C" __global__ void gemm_f32(const void* a, int aType, long aBatch, int lda, int transA,
                                    const void* b, int bType, long bBatch, int ldb, int transB,
                                    float* c, long cBatch, int m, int n, int k, const void* bias, int biasType,
                                    const float* residual) {
    long z = blockIdx.z;
    Matrix ma = {a, aType, z * aBatch, lda, transA};
    Matrix mb = {b, bType, z * bBatch, ldb, transB};
    gemm_tile(ma, mb, c + z * cBatch, n, m, n, k, bias, biasType, 0, residual == nullptr ? nullptr : residual + z * cBatch);
}

// y[nb] = W x[nb] (+ r[nb], laid out as y; r may be null) as an implicit GEMM: M = cout, N = oh * ow,
// K = cin * kh * kw, bias over cout.
// grid (ceil(oh * ow / 64), ceil(cout / 64), batch), 256 threads.
extern "C" __global__ void conv2d_f32(const float* x, const void* w, int wType, const void* bias, int biasType, float* y,
                                      int cin, int h, int wd, int cout, int kh, int kw, int stride, int pad, int oh, int ow,
                                      const float* residual) {
    __shared__ int cols[2 * BN];
    __shared__ int rows[3 * BK];
    long z = blockIdx.z;
    long plane = (long) cout * oh * ow;
    Matrix ma = {w, wType, 0, cin * kh * kw, 0};
    Im2col mb = {x + z * (long) cin * h * wd, h, wd, kh, kw, stride, pad, ow, cols, rows};
    gemm_tile(ma, mb, y + z * plane, oh * ow, cout, oh * ow, cin * kh * kw, bias, biasType, 1,
              residual == nullptr ? nullptr : residual + z * plane);
}

// ---- tensor cores ---------------------------------------------------------------------------------

#define TC_BM 128
#define TC_BN 128
#define TC_BK 32
#define TC_LD (TC_BK + 8)
#define TC_THREADS 256

// An operand value as the tensor cores' input type. F16 saturates at its largest finite value, so
// an activation beyond the F16 range stays finite (NaN stays NaN); BF16 has float32's range.
template <class T> __device__ __forceinline__ T to_operand(float v);
template <> __device__ __forceinline__ __half to_operand<__half>(float v) {
    return __float2half_rn(fabsf(v) > 65504.0f ? copysignf(65504.0f, v) : v);
}
template <> __device__ __forceinline__ __nv_bfloat16 to_operand<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// Rows [r0, r0 + 128) by columns [c0, c0 + 32) of M (rows x cols), converted, into dst[row][col]
// (row stride TC_LD); outside M zero. Threads walk the index that is adjacent in memory fastest.
template <class T, class Mat>
__device__ __forceinline__ void tc_stage(const Mat& mat, int r0, int rows, int c0, int cols, bool transposed, T* dst) {
    // as (row, col) of the operand: A (m, k) → dst[m][k]; B (k, n) → dst[n][k] (transposed = true)
    static_assert(TC_BM == TC_BN, "A and B tiles are staged by the same loop");
    bool rowFast = transposed ? mat.colsAdjacent() : !mat.colsAdjacent();
    for (int i = threadIdx.x; i < TC_BM * TC_BK; i += TC_THREADS) {
        int r;
        int c;
        if (rowFast) {
            // the staged row's index adjacent in memory (B's n, a transposed A's m): rows fastest
            r = i % TC_BM;
            c = i / TC_BM;
        } else {
            r = i / TC_BK;
            c = i % TC_BK;
        }
        float v = 0.0f;
        if (r0 + r < rows && c0 + c < cols) {
            v = transposed ? mat.at(c0 + c, r0 + r) : mat.at(r0 + r, c0 + c);
        }
        dst[r * TC_LD + c] = to_operand<T>(v);
    }
}

// E consecutive values of type S (16 bytes) converted to the operand type T, stored together.
template <class T, class S, int E>
__device__ __forceinline__ void tc_convert16(const S* src, T* dst) {
    uint4 raw = *reinterpret_cast<const uint4*>(src);
    const S* v = reinterpret_cast<const S*>(&raw);
    __align__(16) T out[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        out[e] = to_operand<T>(static_cast<float>(v[e]));
    }
    if constexpr (E == 8) {
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(out);
    } else {
        *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(out);
    }
}

// The 128 x 32 block of tc_stage with 16-byte loads, for a Matrix whose staged rows run along memory
// (A not transposed, B transposed: k adjacent), wholly inside it and 16-byte aligned; false (nothing
// staged) otherwise. The same values in the same places as the element-by-element path.
template <class T, class Mat>
__device__ __forceinline__ bool tc_stage_vector(const Mat& mat, int r0, int rows, int c0, int cols, bool transposed,
                                                T* dst) {
    if constexpr (Mat::kTables) {
        return false;
    } else {
        int size = mat.type == 0 ? 4 : 2;
        const char* base = static_cast<const char*>(mat.p) + (mat.offset + (long) r0 * mat.ld + c0) * size;
        if (mat.trans != (transposed ? 1 : 0) || r0 + TC_BM > rows || c0 + TC_BK > cols || (mat.ld * size) % 16 != 0
            || reinterpret_cast<unsigned long long>(base) % 16 != 0) {
            return false;
        }
        if (size == 2) {
            // 4 loads of 8 per row: 2 per thread (a loop, not unrolled: the accumulators hold most registers)
#pragma unroll 1
            for (int i = threadIdx.x; i < TC_BM * TC_BK / 8; i += TC_THREADS) {
                int r = i / (TC_BK / 8);
                int c = (i % (TC_BK / 8)) * 8;
                const char* src = base + ((long) r * mat.ld + c) * 2;
                if (mat.type == 1) {
                    tc_convert16<T, __half, 8>(reinterpret_cast<const __half*>(src), dst + r * TC_LD + c);
                } else {
                    tc_convert16<T, __nv_bfloat16, 8>(reinterpret_cast<const __nv_bfloat16*>(src), dst + r * TC_LD + c);
                }
            }
        } else {
            // 8 loads of 4 per row: 4 per thread
#pragma unroll 1
            for (int i = threadIdx.x; i < TC_BM * TC_BK / 4; i += TC_THREADS) {
                int r = i / (TC_BK / 4);
                int c = (i % (TC_BK / 4)) * 4;
                tc_convert16<T, float, 4>(reinterpret_cast<const float*>(base + ((long) r * mat.ld + c) * 4),
                                          dst + r * TC_LD + c);
            }
        }
        return true;
    }
}

// One 128 x 128 tile of C = A B (+ bias over rows or columns) (+ R, laid out as C, after the bias) on
// the tensor cores: 8 warps in a 4 x 2 grid, each 32 x 64 of C as 2 x 4 accumulators of 16 x 16
// (float32). A tile and B tile of depth 32 are staged in shared memory as T (A row-major, B
// column-major, k adjacent in both), with 16-byte loads where the operand allows.
template <class T, class A, class B>
__device__ void gemm_tc_tile(const A& a, B& b, float* c, int ldc, int m, int n, int k, const void* bias,
                             int biasType, int biasOverRows, const float* residual) {
    using namespace nvcuda;
    __shared__ __align__(32) T as[TC_BM * TC_LD];
    __shared__ __align__(32) T bs[TC_BN * TC_LD];
    __shared__ __align__(32) float out[TC_THREADS / 32][16 * 20];
    int warp = threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    int wm = (warp / 2) * 32;
    int wn = (warp % 2) * 64;
    int m0 = blockIdx.y * TC_BM;
    int n0 = blockIdx.x * TC_BN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][4];
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            wmma::fill_fragment(acc[i][j], 0.0f);
        }
    }
    if constexpr (B::kTables) {
        b.columns(n0, TC_BN);
    }
    for (int k0 = 0; k0 < k; k0 += TC_BK) {
        if constexpr (B::kTables) {
            // the last step's reads of the table ended before its closing barrier
            b.depth(k0, TC_BK);
            __syncthreads();
        }
        if (!tc_stage_vector<T>(a, m0, m, k0, k, false, as)) {
            tc_stage<T>(a, m0, m, k0, k, false, as);
        }
        if (!tc_stage_vector<T>(b, n0, n, k0, k, true, bs)) {
            tc_stage<T>(b, n0, n, k0, k, true, bs);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[4];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                wmma::load_matrix_sync(fa[i], as + (wm + 16 * i) * TC_LD + kk, TC_LD);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                wmma::load_matrix_sync(fb[j], bs + (wn + 16 * j) * TC_LD + kk, TC_LD);
            }
#pragma unroll
            for (int i = 0; i < 2; i++) {
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
    // each accumulator through the warp's 16 x 16 scratch (row stride 20) to C, bias and residual added
    float* scratch = out[warp];
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            wmma::store_matrix_sync(scratch, acc[i][j], 20, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int row = m0 + wm + 16 * i + e / 16;
                int col = n0 + wn + 16 * j + e % 16;
                if (row < m && col < n) {
                    float v = scratch[(e / 16) * 20 + e % 16];
                    if (bias != nullptr) {
                        v += load_value(bias, biasOverRows ? row : col, biasType);
                    }
                    if (residual != nullptr) {
                        v += residual[(long) row * ldc + col];
                    }
                    c[(long) row * ldc + col] = v;
                }
            }
            __syncwarp();
        }
    }
}

// Batched C[z] = op(A[z]) op(B[z]) (+ bias[n]) (+ R[z]) on the tensor cores, operands converted to T.
// grid (ceil(n / 128), ceil(m / 128), batch), 256 threads.
template <class T>
__device__ void gemm_tc(const void* a, int aType, long aBatch, int lda, int transA, const void* b, int bType, long bBatch,
                        int ldb, int transB, float* c, long cBatch, int m, int n, int k, const void* bias, int biasType,
                        const float* residual) {
    long z = blockIdx.z;
    Matrix ma = {a, aType, z * aBatch, lda, transA};
    Matrix mb = {b, bType, z * bBatch, ldb, transB};
    gemm_tc_tile<T>(ma, mb, c + z * cBatch, n, m, n, k, bias, biasType, 0,
                    residual == nullptr ? nullptr : residual + z * cBatch);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS) gemm_tc_f16(const void* a, int aType, long aBatch, int lda,
        int transA, const void* b, int bType, long bBatch, int ldb, int transB, float* c, long cBatch, int m, int n, int k,
        const void* bias, int biasType, const float* residual) {
    gemm_tc<__half>(a, aType, aBatch, lda, transA, b, bType, bBatch, ldb, transB, c, cBatch, m, n, k, bias, biasType,
                    residual);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS) gemm_tc_bf16(const void* a, int aType, long aBatch, int lda,
        int transA, const void* b, int bType, long bBatch, int ldb, int transB, float* c, long cBatch, int m, int n, int k,
        const void* bias, int biasType, const float* residual) {
    gemm_tc<__nv_bfloat16>(a, aType, aBatch, lda, transA, b, bType, bBatch, ldb, transB, c, cBatch, m, n, k, bias,
                           biasType, residual);
}

// The convolution as an implicit GEMM on the tensor cores (see conv2d_f32), operands converted to T.
// grid (ceil(oh * ow / 128), ceil(cout / 128), batch), 256 threads.
template <class T>
__device__ void conv2d_tc(const float* x, const void* w, int wType, const void* bias, int biasType, float* y, int cin,
                          int h, int wd, int cout, int kh, int kw, int stride, int pad, int oh, int ow,
                          const float* residual) {
    __shared__ int cols[2 * TC_BN];
    __shared__ int rows[3 * TC_BK];
    long z = blockIdx.z;
    long plane = (long) cout * oh * ow;
    Matrix ma = {w, wType, 0, cin * kh * kw, 0};
    Im2col mb = {x + z * (long) cin * h * wd, h, wd, kh, kw, stride, pad, ow, cols, rows};
    gemm_tc_tile<T>(ma, mb, y + z * plane, oh * ow, cout, oh * ow, cin * kh * kw, bias, biasType, 1,
                    residual == nullptr ? nullptr : residual + z * plane);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS) conv2d_tc_f16(const float* x, const void* w, int wType,
        const void* bias, int biasType, float* y, int cin, int h, int wd, int cout, int kh, int kw, int stride, int pad,
        int oh, int ow, const float* residual) {
    conv2d_tc<__half>(x, w, wType, bias, biasType, y, cin, h, wd, cout, kh, kw, stride, pad, oh, ow, residual);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS) conv2d_tc_bf16(const float* x, const void* w, int wType,
        const void* bias, int biasType, float* y, int cin, int h, int wd, int cout, int kh, int kw, int stride, int pad,
        int oh, int ow, const float* residual) {
    conv2d_tc<__nv_bfloat16>(x, w, wType, bias, biasType, y, cin, h, wd, cout, kh, kw, stride, pad, oh, ow, residual);
}

// Attention with an online softmax (flash attention's recurrence), one thread per query: the whole
// score row is never stored. q [B, nq, H*d], k and v [B, nk, H*d], out [B, nq, H*d]; d <= 160.
// grid (ceil(nq / 64), heads, batch), 64 threads, dynamic shared memory 2 * 32 * d floats.
#define ATT_QUERIES 64
#define ATT_KEYS 32
#define ATT_MAX_D 160

extern "C" __global__ void attention_f32(const float* q, const float* k, const float* v, float* out, int nq, int nk,
                                         int heads, int d, float scale, int causal) {
    extern __shared__ float tile[];
    float* ks = tile;
    float* vs = tile + ATT_KEYS * d;
    int b = blockIdx.z;
    int h = blockIdx.y;
    int qi = blockIdx.x * ATT_QUERIES + threadIdx.x;
    int width = heads * d;
    bool active = qi < nq;
    float qv[ATT_MAX_D];
    float acc[ATT_MAX_D];
    for (int j = 0; j < d; j++) {
        qv[j] = active ? q[((long) b * nq + qi) * width + h * d + j] * scale : 0.0f;
        acc[j] = 0.0f;
    }
    float mx = -CUDART_INF_F;
    float l = 0.0f;
    int last = causal ? min(nk, blockIdx.x * ATT_QUERIES + ATT_QUERIES) : nk;
    for (int k0 = 0; k0 < last; k0 += ATT_KEYS) {
        int count = min(ATT_KEYS, nk - k0);
        for (int i = threadIdx.x; i < count * d; i += blockDim.x) {
            int kk = i / d;
            int j = i - kk * d;
            long src = ((long) b * nk + k0 + kk) * width + h * d + j;
            ks[kk * d + j] = k[src];
            vs[kk * d + j] = v[src];
        }
        __syncthreads();
        if (active) {
            for (int kk = 0; kk < count; kk++) {
                if (causal && k0 + kk > qi) {
                    break;
                }
                float s = 0.0f;
                for (int j = 0; j < d; j++) {
                    s = fmaf(qv[j], ks[kk * d + j], s);
                }
                float mNew = fmaxf(mx, s);
                float corr = expf(mx - mNew);
                float p = expf(s - mNew);
                l = l * corr + p;
                for (int j = 0; j < d; j++) {
                    acc[j] = acc[j] * corr + p * vs[kk * d + j];
                }
                mx = mNew;
            }
        }
        __syncthreads();
    }
    if (active) {
        float inv = 1.0f / l;
        for (int j = 0; j < d; j++) {
            out[((long) b * nq + qi) * width + h * d + j] = acc[j] * inv;
        }
    }
}

// ---- attention on the tensor cores ------------------------------------------------------------------

#define FA_QUERIES 64
#define FA_KEYS 32
#define FA_WARPS 4
#define FA_THREADS (32 * FA_WARPS)
#define FA_MAX_D 160
#define FA_LDS (FA_KEYS + 4)
#define FA_LDP (FA_KEYS + 8)

// COUNT rows of one head into shared memory as F16 (row stride lds, DP columns): row r's values at
// x[first + r * width + c] for c < d, zero past d and past the valid rows. With 16-byte loads (4
// values at a time) when vec (d a multiple of 4, x 16-byte aligned), else value by value.
template <int DP, int COUNT>
__device__ __forceinline__ void fa_stage(const float* x, long first, int valid, int width, int d, bool vec, __half* dst,
                                         int lds) {
    if (vec) {
        // not unrolled: the output accumulators hold most registers through the whole kernel
#pragma unroll 1
        for (int i = threadIdx.x; i < COUNT * (DP / 4); i += FA_THREADS) {
            int r = i / (DP / 4);
            int c = (i % (DP / 4)) * 4;
            float4 v = {0.0f, 0.0f, 0.0f, 0.0f};
            if (r < valid && c < d) {
                v = *reinterpret_cast<const float4*>(x + first + (long) r * width + c);
            }
            __align__(8) __half o[4] = {to_operand<__half>(v.x), to_operand<__half>(v.y), to_operand<__half>(v.z),
                                        to_operand<__half>(v.w)};
            *reinterpret_cast<uint2*>(dst + r * lds + c) = *reinterpret_cast<const uint2*>(o);
        }
    } else {
        for (int i = threadIdx.x; i < COUNT * DP; i += FA_THREADS) {
            int r = i / DP;
            int c = i % DP;
            dst[r * lds + c] = to_operand<__half>(r < valid && c < d ? x[first + (long) r * width + c] : 0.0f);
        }
    }
}

// Flash attention with Q Kᵀ and P V on the tensor cores (F16 operands, float32 accumulation; Q, K, V
// converted as they are staged, saturating at ±65504) and the online softmax in float32. A block
// takes 64 queries of one head (4 warps of 16), a key block 32 keys. DP is the head dim rounded up
// to 16 (the padding columns are zero). Lanes 2r and 2r + 1 of a warp own its query row r: the
// row's softmax over 16 keys each, and of the output the columns (lane % 2) · 8 .. + 8 of every
// 16-column chunk, kept in registers.
template <int DP>
__device__ void attention_tc_body(const float* q, const float* k, const float* v, float* out, int nq, int nk, int heads,
                                  int d, float scale, int causal, __half* stage, float* scratch, __half* probs) {
    using namespace nvcuda;
    const int lds = DP + 8;
    int b = blockIdx.z;
    int h = blockIdx.y;
    int q0 = blockIdx.x * FA_QUERIES;
    int warp = threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    int width = heads * d;
    // every row of Q, K and V starts 16-byte aligned when d is a multiple of 4 and the tensors are
    bool vec = d % 4 == 0 && ((reinterpret_cast<unsigned long long>(q) | reinterpret_cast<unsigned long long>(k)
                               | reinterpret_cast<unsigned long long>(v)) & 15) == 0;
    fa_stage<DP, FA_QUERIES>(q, ((long) b * nq + q0) * width + h * d, nq - q0, width, d, vec, stage, lds);
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> qf[DP / 16];
#pragma unroll
    for (int c = 0; c < DP / 16; c++) {
        wmma::load_matrix_sync(qf[c], stage + 16 * warp * lds + 16 * c, lds);
    }
    __syncthreads();
    __half* ks = stage;
    __half* vs = stage + FA_KEYS * lds;
    float* s = scratch + warp * 16 * FA_LDS;
    __half* p = probs + warp * 16 * FA_LDP;
    int row = lane / 2;
    int half = lane % 2;
    int qi = q0 + 16 * warp + row;
    float o[DP / 2];
#pragma unroll
    for (int i = 0; i < DP / 2; i++) {
        o[i] = 0.0f;
    }
    float m = -CUDART_INF_F;
    float l = 0.0f;
    int last = causal ? min(nk, q0 + FA_QUERIES) : nk;
    for (int k0 = 0; k0 < last; k0 += FA_KEYS) {
        long first = ((long) b * nk + k0) * width + h * d;
        fa_stage<DP, FA_KEYS>(k, first, nk - k0, width, d, vec, ks, lds);
        fa_stage<DP, FA_KEYS>(v, first, nk - k0, width, d, vec, vs, lds);
        __syncthreads();
        // S = Q Kᵀ: this warp's 16 queries by the block's 32 keys (K read column-major: key-major rows)
#pragma unroll
        for (int j = 0; j < FA_KEYS / 16; j++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int c = 0; c < DP / 16; c++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, ks + 16 * j * lds + 16 * c, lds);
                wmma::mma_sync(acc, qf[c], kf, acc);
            }
            wmma::store_matrix_sync(s + 16 * j, acc, FA_LDS, wmma::mem_row_major);
        }
        __syncwarp();
        // the online softmax of row `row` over this key block
        float sv[16];
        float mx = -CUDART_INF_F;
#pragma unroll
        for (int e = 0; e < 16; e++) {
            int key = k0 + 16 * half + e;
            bool ok = key < nk && (!causal || key <= qi);
            sv[e] = ok ? s[row * FA_LDS + 16 * half + e] * scale : -CUDART_INF_F;
            mx = fmaxf(mx, sv[e]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float mNew = fmaxf(m, mx);
        bool none = mNew == -CUDART_INF_F; // no key seen yet: nothing to rescale, nothing to add
        float corr = none ? 1.0f : expf(m - mNew);
        float sum = 0.0f;
#pragma unroll
        for (int e = 0; e < 16; e++) {
            float pe = none ? 0.0f : expf(sv[e] - mNew);
            sum += pe;
            p[row * FA_LDP + 16 * half + e] = __float2half_rn(pe);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * corr + sum;
        m = mNew;
        __syncwarp();
        // O = O · corr + P V, 16 output columns at a time through the warp's scratch
#pragma unroll
        for (int c = 0; c < DP / 16; c++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int t = 0; t < FA_KEYS / 16; t++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, p + 16 * t, FA_LDP);
                wmma::load_matrix_sync(vf, vs + 16 * t * lds + 16 * c, lds);
                wmma::mma_sync(acc, pf, vf, acc);
            }
            wmma::store_matrix_sync(s, acc, FA_LDS, wmma::mem_row_major);
            __syncwarp();
#pragma unroll
            for (int e = 0; e < 8; e++) {
                o[8 * c + e] = o[8 * c + e] * corr + s[row * FA_LDS + 8 * half + e];
            }
            __syncwarp();
        }
        __syncthreads();
    }
    if (qi < nq) {
        float inv = 1.0f / l;
#pragma unroll
        for (int c = 0; c < DP / 16; c++) {
#pragma unroll
            for (int e = 0; e < 8; e++) {
                int col = 16 * c + 8 * half + e;
                if (col < d) {
                    out[((long) b * nq + qi) * width + h * d + col] = o[8 * c + e] * inv;
                }
            }
        }
    }
}

// q [B, nq, H*d], k and v [B, nk, H*d], out [B, nq, H*d]; d <= 160.
// grid (ceil(nq / 64), heads, batch), 128 threads.
extern "C" __global__ void __launch_bounds__(FA_THREADS, 3) attention_tc_f16(const float* q, const float* k, const float* v,
        float* out, int nq, int nk, int heads, int d, float scale, int causal) {
    // Q staged first (64 rows), then the key block's K and V (32 rows each) in the same place
    __shared__ __align__(32) __half stage[2 * FA_KEYS * (FA_MAX_D + 8)];
    __shared__ __align__(32) float scratch[FA_WARPS * 16 * FA_LDS];
    __shared__ __align__(32) __half probs[FA_WARPS * 16 * FA_LDP];
    switch ((d + 15) / 16) {
        case 1: attention_tc_body<16>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 2: attention_tc_body<32>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 3: attention_tc_body<48>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 4: attention_tc_body<64>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 5: attention_tc_body<80>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 6: attention_tc_body<96>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 7: attention_tc_body<112>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 8: attention_tc_body<128>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 9: attention_tc_body<144>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        case 10: attention_tc_body<160>(q, k, v, out, nq, nk, heads, d, scale, causal, stage, scratch, probs); break;
        default: break;
    }
}

// ---- the tensor cores' rate without memory traffic (for benchmarks) ---------------------------------

constexpr int PEAK_CHAINS = 8;

// Each warp chains PEAK_CHAINS independent 16x16 float accumulators through `iterations` WMMA products
// of fragments held in registers (2 * 16^3 FLOPs each), then writes the sum of all their elements, one
// per warp, so that nothing is dead code.
template <typename T>
__device__ void mma_peak(float* out, float seed, int iterations) {
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[PEAK_CHAINS];
    wmma::fill_fragment(a, (T) seed);
    wmma::fill_fragment(b, (T) seed);
#pragma unroll
    for (int c = 0; c < PEAK_CHAINS; c++) {
        wmma::fill_fragment(acc[c], seed * c);  // distinct chains, or the compiler merges them into one
    }
    for (int it = 0; it < iterations; it++) {
#pragma unroll
        for (int c = 0; c < PEAK_CHAINS; c++) {
            wmma::mma_sync(acc[c], a, b, acc[c]);
        }
    }
    // every element: an unread one lets ptxas drop the half of the product that makes it
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < PEAK_CHAINS; c++) {
#pragma unroll
        for (int e = 0; e < acc[c].num_elements; e++) {
            s += acc[c].x[e];
        }
    }
    if ((threadIdx.x & 31) == 0) {
        out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = s;
    }
}

extern "C" __global__ void mma_peak_f16(float* out, float seed, int iterations) {
    mma_peak<__half>(out, seed, iterations);
}

extern "C" __global__ void mma_peak_bf16(float* out, float seed, int iterations) {
    mma_peak<__nv_bfloat16>(out, seed, iterations);
}
