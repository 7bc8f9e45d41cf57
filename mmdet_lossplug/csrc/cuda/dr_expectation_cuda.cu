// CUDA kernels of DR loss's expectations. Both passes split each image into
// the same chunks of whole anchors (one block per chunk and image), so an
// element's anchor is a 32-bit division within the chunk, never a 64-bit
// one. Forward: each block finds its chunk's shifts (first pass), then its
// softmax sums (second pass, over logits still in L2), reduced in a fixed
// tree in shared memory; one block per image merges the chunks in a fixed
// order. No float atomics anywhere, so two runs are bitwise equal; the bad
// input counts are integer atomics. The backward is one elementwise pass.
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

// Whole anchors per chunk: about kChunk elements, at least one anchor.
int64_t anchors_per_chunk(int64_t classes) {
  if (classes == 0) return kChunk;  // no elements at all
  return classes >= kChunk ? 1 : kChunk / classes;
}

struct Add {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct Min {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};
// Sums of one chunk, all under the same shift.
struct AddSums {
  template <typename acc_t>
  __device__ SoftmaxSums<acc_t> operator()(SoftmaxSums<acc_t> a,
                                           SoftmaxSums<acc_t> b) const {
    return SoftmaxSums<acc_t>{a.shift, a.sum + b.sum, a.dot + b.dot};
  }
};
template <typename acc_t>
struct MergeImages {
  acc_t inv_lam_pos, inv_lam_neg;
  __device__ ImageSums<acc_t> operator()(ImageSums<acc_t> a,
                                         ImageSums<acc_t> b) const {
    return merge(a, b, inv_lam_pos, inv_lam_neg);
  }
};

// Fixed-tree reduction of one value per thread with `op`; every thread
// gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T mine, Op op) {
  __shared__ T shared[kThreads];
  __syncthreads();  // the previous call's readers are done
  shared[threadIdx.x] = mine;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + stride]);
    }
    __syncthreads();
  }
  return shared[0];
}

// The chunk of block (x = chunk, y = image): its first anchor (within the
// whole batch) and its number of elements.
struct Chunk {
  int64_t first_anchor;
  unsigned int elements;
};

__device__ __forceinline__ Chunk this_chunk(int64_t anchors, int64_t classes,
                                            int64_t per_chunk) {
  const int64_t start = blockIdx.x * per_chunk;
  const int64_t count = min(per_chunk, anchors - start);
  return Chunk{blockIdx.y * anchors + start,
               static_cast<unsigned int>(count * classes)};
}

template <typename scalar_t, typename acc_t>
__global__ void chunk_sums_kernel(const scalar_t* __restrict__ logits,
                                  const int64_t* __restrict__ labels,
                                  const float* __restrict__ weights,
                                  int64_t anchors, int64_t classes,
                                  int64_t per_chunk, acc_t inv_lam_pos,
                                  acc_t inv_lam_neg,
                                  ImageSums<acc_t>* __restrict__ partial,
                                  unsigned long long* __restrict__ status) {
  const Chunk chunk = this_chunk(anchors, classes, per_chunk);
  const scalar_t* x = logits + chunk.first_anchor * classes;
  const int64_t* lab = labels + chunk.first_anchor;
  const float* w = weights ? weights + chunk.first_anchor : nullptr;
  const unsigned int num_classes = static_cast<unsigned int>(classes);
  const acc_t inf = acc_t(INFINITY);
  // Pass 1: bad input counts, the negatives' largest and the positives'
  // smallest logit.
  unsigned long long non_finite = 0, bad_labels = 0, nan_weights = 0;
  acc_t neg_max = -inf, pos_min = inf;
  for (unsigned int i = threadIdx.x; i < chunk.elements; i += kThreads) {
    const unsigned int a = i / num_classes, k = i - a * num_classes;
    const acc_t v = static_cast<acc_t>(load(x[i]));
    non_finite += (v - v) != acc_t(0);
    const bool nan_weight = w != nullptr && w[a] != w[a];
    const bool valid = w == nullptr || w[a] > 0.f;
    const int64_t label = lab[a];
    const bool good_label = label_in_range(label, classes);
    if (k == 0) {
      bad_labels += !good_label;
      nan_weights += nan_weight;
    }
    if (!valid) continue;
    if (good_label && label == k) {
      pos_min = v < pos_min ? v : pos_min;
    } else {
      neg_max = v > neg_max ? v : neg_max;
    }
  }
  non_finite = block_reduce(non_finite, Add());
  bad_labels = block_reduce(bad_labels, Add());
  nan_weights = block_reduce(nan_weights, Add());
  if (threadIdx.x == 0) {
    if (non_finite) atomicAdd(status + kNonFiniteLogits, non_finite);
    if (bad_labels) atomicAdd(status + kBadLabels, bad_labels);
    if (nan_weights) atomicAdd(status + kNanWeights, nan_weights);
  }
  neg_max = block_reduce(neg_max, Max());
  pos_min = block_reduce(pos_min, Min());
  // Pass 2: the softmax sums under the chunk's shifts.
  const acc_t neg_shift = neg_max > -inf ? sigmoid(neg_max).p : acc_t(0);
  const acc_t pos_shift = pos_min < inf ? sigmoid(pos_min).p : acc_t(0);
  ImageSums<acc_t> sums = empty_image<acc_t>();
  sums.neg.shift = neg_shift;
  sums.pos.shift = pos_shift;
  for (unsigned int i = threadIdx.x; i < chunk.elements; i += kThreads) {
    const unsigned int a = i / num_classes, k = i - a * num_classes;
    if (w != nullptr && !(w[a] > 0.f)) continue;
    const int64_t label = lab[a];
    const acc_t p = sigmoid(static_cast<acc_t>(load(x[i]))).p;
    if (label_in_range(label, classes) && label == k) {
      const acc_t q = exp_nonpositive((pos_shift - p) * inv_lam_pos);
      sums.pos.sum += q;
      sums.pos.dot += q * p;
    } else {
      const acc_t q = exp_nonpositive((p - neg_shift) * inv_lam_neg);
      sums.neg.sum += q;
      sums.neg.dot += q * p;
    }
  }
  sums.neg = block_reduce(sums.neg, AddSums());
  sums.pos = block_reduce(sums.pos, AddSums());
  if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = sums;
}

template <typename acc_t>
__global__ void image_stats_kernel(const ImageSums<acc_t>* __restrict__ partial,
                                   int64_t chunks, acc_t inv_lam_pos,
                                   acc_t inv_lam_neg,
                                   acc_t* __restrict__ stats) {
  const int64_t b = blockIdx.x;
  ImageSums<acc_t> sums = empty_image<acc_t>();
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
    sums = merge(sums, partial[b * chunks + c], inv_lam_pos, inv_lam_neg);
  }
  sums = block_reduce(sums, MergeImages<acc_t>{inv_lam_pos, inv_lam_neg});
  if (threadIdx.x == 0) write_stats(sums, stats + b * kNumStats);
}

template <typename scalar_t, typename acc_t>
__global__ void grad_kernel(const scalar_t* __restrict__ logits,
                            const int64_t* __restrict__ labels,
                            const float* __restrict__ weights,
                            const acc_t* __restrict__ stats,
                            const acc_t* __restrict__ g_neg,
                            const acc_t* __restrict__ g_pos, int64_t anchors,
                            int64_t classes, int64_t per_chunk,
                            acc_t inv_lam_pos, acc_t inv_lam_neg,
                            scalar_t* __restrict__ grad) {
  const Chunk chunk = this_chunk(anchors, classes, per_chunk);
  const int64_t offset = chunk.first_anchor * classes;
  const int64_t* lab = labels + chunk.first_anchor;
  const float* w = weights ? weights + chunk.first_anchor : nullptr;
  const unsigned int num_classes = static_cast<unsigned int>(classes);
  const acc_t* image_stats = stats + blockIdx.y * kNumStats;
  const GradConstants<acc_t> neg =
      neg_constants(image_stats, g_neg[blockIdx.y], inv_lam_neg);
  const GradConstants<acc_t> pos =
      pos_constants(image_stats, g_pos[blockIdx.y], inv_lam_pos);
  for (unsigned int i = threadIdx.x; i < chunk.elements; i += kThreads) {
    const unsigned int a = i / num_classes, k = i - a * num_classes;
    acc_t g = acc_t(0);
    if (w == nullptr || w[a] > 0.f) {
      const int64_t label = lab[a];
      const bool positive = label_in_range(label, classes) && label == k;
      g = grad_element(static_cast<acc_t>(load(logits[offset + i])),
                       positive ? pos : neg);
    }
    store(grad + offset + i, g);
  }
}

// Grid of the chunked kernels: chunks of one image on x, images on y.
dim3 chunk_grid(int64_t batch, int64_t anchors, int64_t classes) {
  return dim3((unsigned)num_chunks(anchors, anchors_per_chunk(classes)),
              (unsigned)batch);
}

template <typename scalar_t>
cudaError_t forward_typed(const void* logits, const int64_t* labels,
                          const float* weights, int64_t batch,
                          int64_t anchors, int64_t classes, double lam_pos,
                          double lam_neg, void* workspace, void* stats,
                          int64_t* status, cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  if (batch == 0) return cudaSuccess;
  const dim3 grid = chunk_grid(batch, anchors, classes);
  auto* partial = static_cast<ImageSums<acc_t>*>(workspace);
  const acc_t inv_lam_pos = acc_t(1.0 / lam_pos);
  const acc_t inv_lam_neg = acc_t(1.0 / lam_neg);
  chunk_sums_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
      static_cast<const scalar_t*>(logits), labels, weights, anchors, classes,
      anchors_per_chunk(classes), inv_lam_pos, inv_lam_neg, partial,
      reinterpret_cast<unsigned long long*>(status));
  image_stats_kernel<acc_t><<<(unsigned)batch, kThreads, 0, stream>>>(
      partial, grid.x, inv_lam_pos, inv_lam_neg, static_cast<acc_t*>(stats));
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
  if (batch * anchors * classes == 0) return cudaSuccess;
  grad_kernel<scalar_t, acc_t>
      <<<chunk_grid(batch, anchors, classes), kThreads, 0, stream>>>(
          static_cast<const scalar_t*>(logits), labels, weights,
          static_cast<const acc_t*>(stats), static_cast<const acc_t*>(g_neg),
          static_cast<const acc_t*>(g_pos), anchors, classes,
          anchors_per_chunk(classes), acc_t(1.0 / lam_pos),
          acc_t(1.0 / lam_neg), static_cast<scalar_t*>(grad));
  return cudaGetLastError();
}

}  // namespace

size_t forward_workspace_bytes_cuda(DType dtype, int64_t batch,
                                    int64_t anchors, int64_t classes) {
  const size_t per_chunk = dtype == DType::kFloat64
                               ? sizeof(ImageSums<double>)
                               : sizeof(ImageSums<float>);
  return per_chunk * (size_t)batch *
         (size_t)num_chunks(anchors, anchors_per_chunk(classes));
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
                         void* stats, int64_t* status, cudaStream_t stream) {
  DR_DISPATCH(dtype, forward_typed, logits, labels, weights, batch, anchors,
              classes, lam_pos, lam_neg, workspace, stats, status, stream)
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
