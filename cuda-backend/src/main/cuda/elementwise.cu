// jdiffusion CUDA kernels: elementwise ops, activations, normalisation, softmax and layout.
// Activations are float32; weight-like operands (gamma, beta, bias, embedding tables) come as
// float32, float16 or bfloat16, named by a dtype code (common.cuh).
// Every kernel is extern "C" so that its PTX name is the one the Java side launches.

#include "common.cuh"

// ---- activations (one thread per element, grid-stride) -------------------------------------

extern "C" __global__ void silu_f32(const float* x, float* y, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-v));
    }
}

extern "C" __global__ void gelu_f32(const float* x, float* y, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

extern "C" __global__ void gelu_tanh_f32(const float* x, float* y, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
}

extern "C" __global__ void quick_gelu_f32(const float* x, float* y, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-1.702f * v));
    }
}

// GEGLU over rows of 2F: y[r, j] = x[r, j] * gelu(x[r, F + j])
extern "C" __global__ void geglu_f32(const float* x, float* y, long rows, int f) {
    GRID_STRIDE(i, rows * f) {
        long r = i / f;
        int j = (int) (i - r * f);
        float value = x[r * 2 * f + j];
        float gate = x[r * 2 * f + f + j];
        y[i] = value * 0.5f * gate * (1.0f + erff(gate * 0.70710678118654752f));
    }
}

extern "C" __global__ void scale_f32(const float* x, float* y, float s, long n) {
    GRID_STRIDE(i, n) {
        y[i] = x[i] * s;
    }
}

// ---- binary ops with broadcasting -----------------------------------------------------------
// The output has up to 6 axes (left-padded with 1s); strides of a and b are 0 along broadcast axes.
struct Strides6 {
    long shape[6];
    long a[6];
    long b[6];
};

extern "C" __global__ void binary_f32(const float* a, const void* b, int bType, float* y, long n, Strides6 s, int op) {
    GRID_STRIDE(i, n) {
        long rest = i;
        long ia = 0;
        long ib = 0;
        for (int d = 5; d >= 0; d--) {
            long c = rest % s.shape[d];
            rest /= s.shape[d];
            ia += c * s.a[d];
            ib += c * s.b[d];
        }
        float x = a[ia];
        float w = load_value(b, ib, bType);
        y[i] = op == 0 ? x + w : x * w;
    }
}

// ---- normalisation: one block per row or group, two-pass in float32 -------------------------

struct Sum {
    __device__ float operator()(float a, float b) const { return a + b; }
};

struct Max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// The reduction of v over the block (every thread gets it); identity fills the missing warps.
template <class Op>
__device__ float block_reduce(float v, float identity, float* shared, Op op) {
    for (int o = 16; o > 0; o >>= 1) {
        v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    }
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    if (lane == 0) {
        shared[warp] = v;
    }
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < warps ? shared[threadIdx.x] : identity;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) {
            v = op(v, __shfl_down_sync(0xffffffffu, v, o));
        }
        if (lane == 0) {
            shared[0] = v;
        }
    }
    __syncthreads();
    float total = shared[0];
    __syncthreads();
    return total;
}

__device__ float block_sum(float v, float* shared) {
    return block_reduce(v, 0.0f, shared, Sum());
}

__device__ float block_max(float v, float* shared) {
    return block_reduce(v, -CUDART_INF_F, shared, Max());
}

// x [rows, d]; gamma/beta [d] or null
extern "C" __global__ void layer_norm_f32(const float* x, float* y, int d, const void* gamma, int gType,
                                          const void* beta, int bType, float eps) {
    __shared__ float shared[32];
    const float* row = x + (long) blockIdx.x * d;
    float* out = y + (long) blockIdx.x * d;
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        s += row[j];
    }
    float mean = block_sum(s, shared) / d;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float c = row[j] - mean;
        ss += c * c;
    }
    float inv = rsqrtf(block_sum(ss, shared) / d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = (row[j] - mean) * inv;
        if (gamma != nullptr) {
            v *= load_value(gamma, j, gType);
        }
        if (beta != nullptr) {
            v += load_value(beta, j, bType);
        }
        out[j] = v;
    }
}

// x [n, c, spatial]; one block per (n, group); gamma/beta [c]
extern "C" __global__ void group_norm_f32(const float* x, float* y, int c, long spatial, int groups,
                                          const void* gamma, int gType, const void* beta, int bType, float eps, int silu) {
    __shared__ float shared[32];
    int per = c / groups;
    int g = blockIdx.x % groups;
    long base = (long) blockIdx.x * per * spatial;
    long count = per * spatial;
    float s = 0.0f;
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        s += x[base + i];
    }
    float mean = block_sum(s, shared) / count;
    float ss = 0.0f;
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        float d = x[base + i] - mean;
        ss += d * d;
    }
    float inv = rsqrtf(block_sum(ss, shared) / count + eps);
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        int ch = g * per + (int) (i / spatial);
        float v = (x[base + i] - mean) * inv * load_value(gamma, ch, gType) + load_value(beta, ch, bType);
        if (silu) {
            v = v / (1.0f + expf(-v));
        }
        y[base + i] = v;
    }
}

// softmax over rows of d, one block per row
extern "C" __global__ void softmax_f32(const float* x, float* y, int d) {
    __shared__ float shared[32];
    const float* row = x + (long) blockIdx.x * d;
    float* out = y + (long) blockIdx.x * d;
    float m = -CUDART_INF_F;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        m = fmaxf(m, row[j]);
    }
    m = block_max(m, shared);
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        s += expf(row[j] - m);
    }
    float inv = 1.0f / block_sum(s, shared);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        out[j] = expf(row[j] - m) * inv;
    }
}

// ---- layout -----------------------------------------------------------------------------------

// x [nc, h, w] -> y [nc, 2h, 2w]
extern "C" __global__ void upsample_nearest2x_f32(const float* x, float* y, long nc, int h, int w) {
    GRID_STRIDE(i, nc * 4L * h * w) {
        int ow = 2 * w;
        long plane = i / (4L * h * w);
        long r = i - plane * 4L * h * w;
        int oy = (int) (r / ow);
        int ox = (int) (r - (long) oy * ow);
        y[i] = x[plane * h * w + (long) (oy >> 1) * w + (ox >> 1)];
    }
}

// one input of a concatenation: x [outer, inner] into y [outer, total] at column offset
extern "C" __global__ void concat_part_f32(const float* x, float* y, long outer, long inner, long total, long offset) {
    GRID_STRIDE(i, outer * inner) {
        long o = i / inner;
        y[o * total + offset + (i - o * inner)] = x[i];
    }
}

// permutation of up to 6 axes: y[i] = x[sum c_d * xStride[perm[d]]]
struct Permute6 {
    long shape[6];   // of y
    long stride[6];  // of x, along y's axes
};

extern "C" __global__ void permute_f32(const float* x, float* y, long n, Permute6 p) {
    GRID_STRIDE(i, n) {
        long rest = i;
        long ix = 0;
        for (int d = 5; d >= 0; d--) {
            long c = rest % p.shape[d];
            rest /= p.shape[d];
            ix += c * p.stride[d];
        }
        y[i] = x[ix];
    }
}

// y [count, d] = table[ids[k], :]
extern "C" __global__ void embedding_f32(const void* table, int tType, const int* ids, float* y, int count, int d) {
    GRID_STRIDE(i, (long) count * d) {
        long k = i / d;
        int j = (int) (i - k * d);
        y[i] = load_value(table, (long) ids[k] * d + j, tType);
    }
}

// y [count, dim]: LDM's sinusoidal embedding
// Each frequency exp(-ln(maxPeriod) i / (half - freqShift)) is computed in double and rounded once,
// as the CPU backend does, so that t * freq (up to ~1000 * 1) is the same float on both backends.
extern "C" __global__ void timestep_embedding_f32(const float* t, float* y, int count, int dim, float maxPeriod,
                                                  int cosFirst, float freqShift) {
    int half = dim / 2;
    GRID_STRIDE(i, (long) count * dim) {
        int k = (int) (i / dim);
        int j = (int) (i - (long) k * dim);
        float v = 0.0f;
        if (j < 2 * half) {
            int f = j < half ? j : j - half;
            float freq = (float) exp(-log((double) maxPeriod) * f / (double) (half - freqShift));
            float arg = t[k] * freq;
            bool first = j < half;
            v = (first == (cosFirst != 0)) ? cosf(arg) : sinf(arg);
        }
        y[i] = v;
    }
}
