// CUDA kernels of DR loss's expectations. Two-stage deterministic
// reduction: stage 1 reduces fixed-size chunks of each image (one block
// per chunk, a fixed tree in shared memory), stage 2 merges each image's
// chunks (one block per image, fixed order). No float atomics anywhere, so
// two runs are bitwise equal. The backward is one elementwise pass.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../dr_expectation_math.h"
#include "dr_expectation_cuda.h"

namespace dr_loss {
namespace {

constexpr int kThreads = 256;

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

__device__ __forceinline__ float load(float x) { return x; }
__device__ __forceinline__ double load(double x) { return x; }
__device__ __forceinline__ float load(__half x) { return __half2float(x); }
__device__ __forceinline__ float load(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

__device__ __forceinline__ void store(float* to, float x) { *to = x; }
__device__ __forceinline__ void store(double* to, double x) { *to = x; }
__device__ __forceinline__ void store(__half* to, float x) {
  *to = __float2half(x);
}
__device__ __forceinline__ void store(__nv_bfloat16* to, float x) {
  *to = __float2bfloat16(x);
}

// Tree reduction of one ImageSums per thread; thread 0 gets the result.
template <typename acc_t>
__device__ ImageSums<acc_t> block_merge(ImageSums<acc_t> mine) {
  __shared__ ImageSums<acc_t> shared[kThreads];
  shared[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      shared[threadIdx.x] =
          merge(shared[threadIdx.x], shared[threadIdx.x + stride]);
    }
    __syncthreads();
  }
  return shared[0];
}

template <typename scalar_t, typename acc_t>
__global__ void chunk_sums_kernel(const scalar_t* __restrict__ logits,
                                  const int64_t* __restrict__ labels,
                                  const float* __restrict__ weights,
                                  int64_t anchors, int64_t classes,
                                  acc_t inv_lam_pos, acc_t inv_lam_neg,
                                  ImageSums<acc_t>* __restrict__ partial) {
  const int64_t b = blockIdx.y, chunk = blockIdx.x;
  const int64_t elements = anchors * classes;
  const scalar_t* x = logits + b * elements;
  const int64_t* lab = labels + b * anchors;
  const float* w = weights ? weights + b * anchors : nullptr;
  const int64_t stop = min(elements, (chunk + 1) * kChunk);
  ImageSums<acc_t> sums = empty_image<acc_t>();
  for (int64_t i = chunk * kChunk + threadIdx.x; i < stop; i += kThreads) {
    add_element(sums, element_sign(lab, w, i / classes, i % classes),
                static_cast<acc_t>(load(x[i])), inv_lam_pos, inv_lam_neg);
  }
  sums = block_merge(sums);
  if (threadIdx.x == 0) partial[b * gridDim.x + chunk] = sums;
}

template <typename acc_t>
__global__ void image_stats_kernel(const ImageSums<acc_t>* __restrict__ partial,
                                   int64_t chunks, acc_t* __restrict__ stats) {
  const int64_t b = blockIdx.x;
  ImageSums<acc_t> sums = empty_image<acc_t>();
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
    sums = merge(sums, partial[b * chunks + c]);
  }
  sums = block_merge(sums);
  if (threadIdx.x == 0) write_stats(sums, stats + b * kNumStats);
}

template <typename scalar_t, typename acc_t>
__global__ void grad_kernel(const scalar_t* __restrict__ logits,
                            const int64_t* __restrict__ labels,
                            const float* __restrict__ weights,
                            const acc_t* __restrict__ stats,
                            const acc_t* __restrict__ g_neg,
                            const acc_t* __restrict__ g_pos, int64_t total,
                            int64_t anchors, int64_t classes,
                            acc_t inv_lam_pos, acc_t inv_lam_neg,
                            scalar_t* __restrict__ grad) {
  const int64_t elements = anchors * classes;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
       idx < total; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = idx / elements, i = idx % elements;
    const float* w = weights ? weights + b * anchors : nullptr;
    const int sign =
        element_sign(labels + b * anchors, w, i / classes, i % classes);
    const acc_t g = grad_element(sign, static_cast<acc_t>(load(logits[idx])),
                                 stats + b * kNumStats, g_neg[b], g_pos[b],
                                 inv_lam_pos, inv_lam_neg);
    store(grad + idx, g);
  }
}

template <typename scalar_t>
cudaError_t forward_typed(const void* logits, const int64_t* labels,
                          const float* weights, int64_t batch,
                          int64_t anchors, int64_t classes, double lam_pos,
                          double lam_neg, void* workspace, void* stats,
                          cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  if (batch == 0) return cudaSuccess;
  const int64_t chunks = num_chunks(anchors * classes);
  auto* partial = static_cast<ImageSums<acc_t>*>(workspace);
  chunk_sums_kernel<scalar_t, acc_t>
      <<<dim3((unsigned)chunks, (unsigned)batch), kThreads, 0, stream>>>(
          static_cast<const scalar_t*>(logits), labels, weights, anchors,
          classes, acc_t(1.0 / lam_pos), acc_t(1.0 / lam_neg), partial);
  image_stats_kernel<acc_t><<<(unsigned)batch, kThreads, 0, stream>>>(
      partial, chunks, static_cast<acc_t*>(stats));
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t backward_typed(const void* logits, const int64_t* labels,
                           const float* weights, const void* stats,
                           const void* g_neg, const void* g_pos,
                           int64_t batch, int64_t anchors, int64_t classes,
                           double lam_pos, double lam_neg, void* grad,
                           cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t total = batch * anchors * classes;
  if (total == 0) return cudaSuccess;
  const int64_t blocks = min((total + kThreads - 1) / kThreads,
                             (int64_t)65535 * 8);
  grad_kernel<scalar_t, acc_t><<<(unsigned)blocks, kThreads, 0, stream>>>(
      static_cast<const scalar_t*>(logits), labels, weights,
      static_cast<const acc_t*>(stats), static_cast<const acc_t*>(g_neg),
      static_cast<const acc_t*>(g_pos), total, anchors, classes,
      acc_t(1.0 / lam_pos), acc_t(1.0 / lam_neg),
      static_cast<scalar_t*>(grad));
  return cudaGetLastError();
}

}  // namespace

size_t forward_workspace_bytes_cuda(DType dtype, int64_t batch,
                                    int64_t anchors, int64_t classes) {
  const size_t per_chunk = dtype == DType::kFloat64
                               ? sizeof(ImageSums<double>)
                               : sizeof(ImageSums<float>);
  return per_chunk * (size_t)batch * (size_t)num_chunks(anchors * classes);
}

#define DR_DISPATCH(dtype, FN, ...)                                   \
  switch (dtype) {                                                    \
    case DType::kFloat32: return FN<float>(__VA_ARGS__);              \
    case DType::kFloat64: return FN<double>(__VA_ARGS__);             \
    case DType::kFloat16: return FN<__half>(__VA_ARGS__);             \
    case DType::kBFloat16: return FN<__nv_bfloat16>(__VA_ARGS__);     \
  }                                                                   \
  return cudaErrorInvalidValue;

cudaError_t forward_cuda(DType dtype, const void* logits,
                         const int64_t* labels, const float* weights,
                         int64_t batch, int64_t anchors, int64_t classes,
                         double lam_pos, double lam_neg, void* workspace,
                         void* stats, cudaStream_t stream) {
  DR_DISPATCH(dtype, forward_typed, logits, labels, weights, batch, anchors,
              classes, lam_pos, lam_neg, workspace, stats, stream)
}

cudaError_t backward_cuda(DType dtype, const void* logits,
                          const int64_t* labels, const float* weights,
                          const void* stats, const void* g_neg,
                          const void* g_pos, int64_t batch, int64_t anchors,
                          int64_t classes, double lam_pos, double lam_neg,
                          void* grad, cudaStream_t stream) {
  DR_DISPATCH(dtype, backward_typed, logits, labels, weights, stats, g_neg,
              g_pos, batch, anchors, classes, lam_pos, lam_neg, grad, stream)
}

}  // namespace dr_loss
