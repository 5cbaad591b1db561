// Shared by the jdiffusion kernels: reading operands of any storage type as float32, and the
// grid-stride loop. dtype codes: 0 = F32, 1 = F16, 2 = BF16.
#pragma once

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math_constants.h>

__device__ __forceinline__ float load_value(const void* p, long i, int dtype) {
    if (dtype == 1) {
        return __half2float(reinterpret_cast<const __half*>(p)[i]);
    }
    if (dtype == 2) {
        return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
    }
    return reinterpret_cast<const float*>(p)[i];
}

#define GRID_STRIDE(i, n) for (long i = blockIdx.x * (long) blockDim.x + threadIdx.x; i < (n); i += (long) blockDim.x * gridDim.x)
