// CUDA kernels of DR loss's expectations, written for the memory bound: per
// element one 16-byte-vector load (and, backward, store) share, a few dozen
// instructions, no division.
//
// Both kernels split each image into the same chunks of whole anchors (one
// block per chunk and image) and first stage each anchor's label and weight
// into shared memory as one code (staged_codes()); a thread then walks its
// elements as 16-byte packs (an aligned body, a scalar head and tail),
// stepping anchor and class by addition (for_each_element()). Addresses are
// 32-bit offsets within the chunk from one 64-bit base.
//
// Forward: a single pass. Each thread keeps the negatives' softmax sums
// under a running shift (its largest p so far, the sums rescaled when it
// grows) and adds the positives (at most one per anchor) while staging;
// the block agrees on each set's shift (a max and a min), each thread
// rescales its sums to it once, and plain sums, counts and the non-finite
// probe are added in a fixed tree (reduce_chunk()); one block per image
// merges the chunks in a fixed order. No float atomics anywhere, so two
// runs are bitwise equal; the bad input counts are 32-bit per chunk, added
// up by the second stage into the status.
// The backward is one elementwise pass with the forward's shifts.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>

#include "../dr_expectation_math.h"
#include "dr_expectation_cuda.h"

namespace dr_loss {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kPackBytes = 16;
// An anchor's staged code: its positive class, `classes` for none
// (background, or a label outside [0, C] read as background), or kIgnored.
constexpr int kIgnored = -1;

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float load(float x) { return x; }
__device__ __forceinline__ double load(double x) { return x; }
__device__ __forceinline__ float load(__half x) { return __half2float(x); }
__device__ __forceinline__ float load(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

// The other way, with the intrinsics: PyTorch's builds disable the
// implicit conversions of __half and __nv_bfloat16.
__device__ __forceinline__ void narrow(float x, float& to) { to = x; }
__device__ __forceinline__ void narrow(double x, double& to) { to = x; }
__device__ __forceinline__ void narrow(float x, __half& to) {
  to = __float2half(x);
}
__device__ __forceinline__ void narrow(float x, __nv_bfloat16& to) {
  to = __float2bfloat16(x);
}

// 1 / d for d in [1, 2] (1 + exp(-|x|)): the hardware's approximation and
// one Newton step, instead of an IEEE division and its slow-path branch.
__device__ __forceinline__ float reciprocal_1_2(float d) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
  return fmaf(r, fmaf(-d, r, 1.f), r);
}
__device__ __forceinline__ double reciprocal_1_2(double d) { return 1.0 / d; }

// 2^t for t <= 0: the hardware's approximation (2 ulp), flushing results
// below 2^-126 to 0: a softmax weight that small is lost against the
// set's largest, 1, anyway.
__device__ __forceinline__ float exp2_nonpositive(float t) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(t));
  return r;
}
__device__ __forceinline__ double exp2_nonpositive(double t) { return exp2(t); }

// sigmoid() of dr_expectation_math.h with the reciprocal above: the forward
// and the backward must both use this one, so that every negative's p is
// at most the shift the forward found.
template <typename acc_t>
__device__ __forceinline__ Sigmoid<acc_t> fast_sigmoid(acc_t x) {
  const acc_t e = exp_nonpositive(-fabs(x));  // NaN stays
  const acc_t r = reciprocal_1_2(acc_t(1) + e);
  return Sigmoid<acc_t>{x >= acc_t(0) ? r : e * r, e * r * r};
}

// Adds element p to a thread's negatives (if `negative`) under a running
// shift: sums start empty at shift 0 (p >= 0); a larger p becomes the shift
// and rescales what was summed. log2_scale = log2(e) / lam_neg.
template <typename acc_t>
__device__ __forceinline__ void add_negative(SoftmaxSums<acc_t>& s, acc_t p,
                                             bool negative, acc_t log2_scale) {
  const acc_t above = p - s.shift;
  const acc_t t = exp2_nonpositive(-fabs(above) * log2_scale);
  const bool grows = negative && above > acc_t(0);
  const acc_t old_scale = grows ? t : acc_t(1);
  const acc_t weight = grows ? acc_t(1) : (negative ? t : acc_t(0));
  s.sum = fma(s.sum, old_scale, weight);
  s.dot = fma(s.dot, old_scale, weight * p);
  s.shift = grows ? p : s.shift;
}

// A value of any trivially copyable type across a warp, 32 bits at a time.
template <typename T>
__device__ __forceinline__ T shuffle_down(const T& value, int delta) {
  static_assert(sizeof(T) % 4 == 0, "whole 32-bit words");
  unsigned words[sizeof(T) / 4];
  memcpy(words, &value, sizeof(T));
#pragma unroll
  for (int i = 0; i < int(sizeof(T) / 4); ++i) {
    words[i] = __shfl_down_sync(0xffffffffu, words[i], delta);
  }
  T out;
  memcpy(&out, words, sizeof(T));
  return out;
}

// Fixed-tree reduction of one value per thread with `combine` (a pure
// function of its two arguments, so the result does not depend on timing);
// thread 0 gets the result.
template <typename T, typename Combine>
__device__ T block_reduce(T mine, Combine combine) {
  __shared__ T warp_results[kWarps];
#pragma unroll
  for (int delta = kWarpSize / 2; delta > 0; delta >>= 1) {
    mine = combine(mine, shuffle_down(mine, delta));
  }
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  if (lane == 0) warp_results[warp] = mine;
  __syncthreads();
  if (warp == 0) {
    mine = warp_results[lane < kWarps ? lane : 0];
#pragma unroll
    for (int delta = kWarps / 2; delta > 0; delta >>= 1) {
      mine = combine(mine, shuffle_down(mine, delta));
    }
  }
  return mine;
}

// The chunk of block (x = chunk, y = image): its first anchor (within the
// whole batch), its anchors and its elements.
struct Chunk {
  int64_t first_anchor;
  unsigned int anchors, elements;
};

__device__ __forceinline__ Chunk this_chunk(int64_t anchors, int64_t classes,
                                            int64_t per_chunk) {
  const int64_t start = blockIdx.x * per_chunk;
  const int64_t count = min(per_chunk, anchors - start);
  return Chunk{blockIdx.y * anchors + start, static_cast<unsigned int>(count),
               static_cast<unsigned int>(count * classes)};
}

// One thread's (and, reduced, one chunk's) part of the forward: the sums,
// a probe of the logits' finiteness and the bad input counts.
template <typename acc_t>
struct ChunkPart {
  ImageSums<acc_t> sums;
  acc_t probe;  // sum of x * 0 over the logits: NaN iff one is not finite
  unsigned int bad_labels, nan_weights;
};

template <typename acc_t>
__device__ __forceinline__ ChunkPart<acc_t> empty_part() {
  return ChunkPart<acc_t>{empty_image<acc_t>(), acc_t(0), 0u, 0u};
}

// Anchor a's code (its positive class, `classes` for none, kIgnored),
// counting a bad label or a NaN weight into `part`.
template <typename acc_t>
__device__ __forceinline__ int read_code(const int64_t* __restrict__ labels,
                                         const float* __restrict__ weights,
                                         unsigned int a, unsigned int classes,
                                         ChunkPart<acc_t>& part) {
  const int64_t label = labels[a];
  const bool good_label = label_in_range(label, classes);
  bool valid = true;
  if (weights != nullptr) {
    const float w = weights[a];
    valid = w > 0.f;
    part.nan_weights += w != w;
  }
  part.bad_labels += !good_label;
  const unsigned int cls = good_label ? unsigned(label) : classes;
  return valid ? int(cls) : kIgnored;
}

template <typename acc_t>
__device__ __forceinline__ void add_positive(ChunkPart<acc_t>& part, acc_t p,
                                             acc_t inv_lam_pos) {
  part.sums.pos =
      merge(part.sums.pos, SoftmaxSums<acc_t>{p, acc_t(1), p}, -inv_lam_pos);
}

// Writes each anchor's code to `codes` (shared), counts bad labels and NaN
// weights, and sums the positives, whose logits it reads here (at most one
// per anchor). Ends with a barrier.
template <typename scalar_t, typename acc_t>
__device__ ChunkPart<acc_t> stage_codes(const Chunk& chunk,
                                        const scalar_t* __restrict__ x,
                                        const int64_t* __restrict__ labels,
                                        const float* __restrict__ weights,
                                        unsigned int classes, acc_t inv_lam_pos,
                                        int* codes) {
  ChunkPart<acc_t> part = empty_part<acc_t>();
  for (unsigned int a = threadIdx.x; a < chunk.anchors; a += kThreads) {
    const int code = read_code(labels, weights, a, classes, part);
    codes[a] = code;
    if (code >= 0 && unsigned(code) < classes) {
      add_positive(
          part, fast_sigmoid(static_cast<acc_t>(load(x[a * classes + code]))).p,
          inv_lam_pos);
    }
  }
  __syncthreads();
  return part;
}

// C <= 1 (a one-class detector, or no classes): an anchor is at most one
// element, so staging its code would cost what reading it does; one pass
// over the anchors reads label, weight and logit together, and the chunk
// needs no shared memory.
template <typename scalar_t, typename acc_t>
__device__ ChunkPart<acc_t> anchor_part(const Chunk& chunk,
                                        const scalar_t* __restrict__ x,
                                        const int64_t* __restrict__ labels,
                                        const float* __restrict__ weights,
                                        unsigned int classes, acc_t inv_lam_pos,
                                        acc_t log2_scale_neg) {
  ChunkPart<acc_t> part = empty_part<acc_t>();
  for (unsigned int a = threadIdx.x; a < chunk.anchors; a += kThreads) {
    const int code = read_code(labels, weights, a, classes, part);
    if (classes == 0) continue;
    const acc_t v = static_cast<acc_t>(load(x[a]));
    part.probe = fma(v, acc_t(0), part.probe);
    const acc_t p = fast_sigmoid(v).p;
    if (code == 0) add_positive(part, p, inv_lam_pos);
    add_negative(part.sums.neg, p, code > 0, log2_scale_neg);
  }
  return part;
}

// Elements of x before its first 16-byte boundary.
template <typename scalar_t>
__device__ __forceinline__ unsigned int unaligned_head(const scalar_t* x) {
  constexpr unsigned int kPack = kPackBytes / sizeof(scalar_t);
  const unsigned int misaligned =
      (reinterpret_cast<uintptr_t>(x) / sizeof(scalar_t)) % kPack;
  return misaligned ? kPack - misaligned : 0u;
}

// Calls visit(value, anchor, class) for every element [0, n) of the chunk
// at x, which returns the element's result, stored to y if kStore. Threads
// take 16-byte packs in turn (the aligned body) and the elements before
// and after them (head, tail: fewer than one pack each, unless x and y are
// misaligned differently, where all is scalar: a view of logits at an odd
// offset); anchor and class step by addition, with one division per thread
// to start (visitors that ignore them compile without).
template <bool kStore, typename scalar_t, typename Visit>
__device__ __forceinline__ void for_each_element(const scalar_t* __restrict__ x,
                                                 scalar_t* __restrict__ y,
                                                 unsigned int n,
                                                 unsigned int classes,
                                                 Visit visit) {
  constexpr unsigned int kPack = kPackBytes / sizeof(scalar_t);
  if (n == 0) return;
  const bool same_alignment = !kStore || unaligned_head(x) == unaligned_head(y);
  const unsigned int head = same_alignment ? min(unaligned_head(x), n) : n;
  const unsigned int packs = (n - head) / kPack;
  const unsigned int tail = head + packs * kPack;
  const auto visit_one = [&](unsigned int i) {
    const unsigned int a = i / classes;
    const auto result = visit(load(x[i]), a, i - a * classes);
    if (kStore) narrow(result, y[i]);
  };
  for (unsigned int i = threadIdx.x; i < head; i += kThreads) visit_one(i);
  for (unsigned int i = tail + threadIdx.x; i < n; i += kThreads) {
    visit_one(i);
  }
  unsigned int first = head + threadIdx.x * kPack;
  unsigned int anchor = first / classes, cls = first - anchor * classes;
  const unsigned int step = kThreads * kPack;
  const unsigned int step_anchors = step / classes;
  const unsigned int step_classes = step - step_anchors * classes;
  for (unsigned int pack = threadIdx.x; pack < packs; pack += kThreads) {
    const unsigned int offset = head + pack * kPack;
    uint4 raw = *reinterpret_cast<const uint4*>(x + offset);
    scalar_t values[kPack];
    memcpy(values, &raw, kPackBytes);
    unsigned int a = anchor, k = cls;
#pragma unroll
    for (unsigned int j = 0; j < kPack; ++j) {
      const auto result = visit(load(values[j]), a, k);
      if (kStore) narrow(result, values[j]);
      const bool wrap = ++k == classes;
      k = wrap ? 0u : k;
      a += wrap;
    }
    if (kStore) {
      memcpy(&raw, values, kPackBytes);
      *reinterpret_cast<uint4*>(y + offset) = raw;
    }
    cls += step_classes;
    anchor += step_anchors;
    const bool carry = cls >= classes;
    cls = carry ? cls - classes : cls;
    anchor += carry;
  }
}

// The forward's block reduction, lighter than block_reduce() over merge():
// the block first agrees on each set's shift (the negatives' largest p,
// the positives' smallest: a max and a min, exact in any order), each
// thread rescales its own sums to it once, and what is left are plain sums
// in block_reduce()'s fixed tree, with no exponential at any level.
template <typename acc_t>
struct PlainSums {
  acc_t neg_sum, neg_dot, pos_sum, pos_dot, probe;
  unsigned int bad_labels, nan_weights;
};

struct AddPlainSums {
  template <typename acc_t>
  __device__ PlainSums<acc_t> operator()(const PlainSums<acc_t>& a,
                                         const PlainSums<acc_t>& b) const {
    return PlainSums<acc_t>{a.neg_sum + b.neg_sum,
                            a.neg_dot + b.neg_dot,
                            a.pos_sum + b.pos_sum,
                            a.pos_dot + b.pos_dot,
                            a.probe + b.probe,
                            a.bad_labels + b.bad_labels,
                            a.nan_weights + b.nan_weights};
  }
};

// The chunk's part, in thread 0. An empty set of a thread (sum 0) takes
// no part in its set's shift: the negatives' empty shift, 0, is below
// every p anyway; the positives' is read as +inf, and an empty chunk's
// shifts are 0, as empty_sums(). A chunk holding a non-finite logit ends
// as nan_image() whatever its sums (the probe), so NaN shifts need no care.
template <typename acc_t>
__device__ ChunkPart<acc_t> reduce_chunk(const ChunkPart<acc_t>& mine,
                                         acc_t log2_scale_pos,
                                         acc_t log2_scale_neg) {
  __shared__ acc_t warp_shifts[2][kWarps];
  const SoftmaxSums<acc_t>& neg = mine.sums.neg;
  const SoftmaxSums<acc_t>& pos = mine.sums.pos;
  const acc_t none = acc_t(INFINITY);
  acc_t top = neg.shift;
  acc_t low = pos.sum != acc_t(0) ? pos.shift : none;
#pragma unroll
  for (int delta = kWarpSize / 2; delta > 0; delta >>= 1) {
    top = fmax(top, __shfl_xor_sync(0xffffffffu, top, delta));
    low = fmin(low, __shfl_xor_sync(0xffffffffu, low, delta));
  }
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  if (lane == 0) {
    warp_shifts[0][warp] = top;
    warp_shifts[1][warp] = low;
  }
  __syncthreads();
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    top = fmax(top, warp_shifts[0][w]);
    low = fmin(low, warp_shifts[1][w]);
  }
  // Arguments <= 0: top >= neg.shift, low <= pos.shift of a non-empty set.
  const acc_t neg_scale = exp2_nonpositive((neg.shift - top) * log2_scale_neg);
  const acc_t pos_scale =
      pos.sum != acc_t(0) ? exp2_nonpositive((low - pos.shift) * log2_scale_pos)
                          : acc_t(0);
  const PlainSums<acc_t> sums = block_reduce(
      PlainSums<acc_t>{neg.sum * neg_scale, neg.dot * neg_scale,
                       pos.sum * pos_scale, pos.dot * pos_scale, mine.probe,
                       mine.bad_labels, mine.nan_weights},
      AddPlainSums());
  return ChunkPart<acc_t>{
      ImageSums<acc_t>{SoftmaxSums<acc_t>{top, sums.neg_sum, sums.neg_dot},
                       SoftmaxSums<acc_t>{low != none ? low : acc_t(0),
                                          sums.pos_sum, sums.pos_dot}},
      sums.probe, sums.bad_labels, sums.nan_weights};
}

// Each chunk's counts of bad input, for the second stage to add up (no
// atomics: the status is written whole, so nothing zeroes it first).
struct ChunkCounts {
  unsigned int of[kNumCounts];
};

// Rare (an overflow under AMP, a bug upstream): the exact count of the
// chunk's non-finite logits, added to the 0 its thread 0 wrote before a
// barrier (32-bit integer atomics: the same sum in any order). Out of line,
// so that the common path's code holds none of it.
template <typename scalar_t>
__device__ __noinline__ void count_non_finite(const scalar_t* __restrict__ x,
                                              unsigned int elements,
                                              unsigned int* count_out) {
  using acc_t = typename Acc<scalar_t>::type;
  unsigned int count = 0;
  for (unsigned int i = threadIdx.x; i < elements; i += kThreads) {
    const acc_t v = static_cast<acc_t>(load(x[i]));
    count += (v - v) != acc_t(0);
  }
  if (count != 0) atomicAdd(count_out, count);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    chunk_sums_kernel(const scalar_t* __restrict__ logits,
                      const int64_t* __restrict__ labels,
                      const float* __restrict__ weights, int64_t anchors,
                      int64_t classes, int64_t per_chunk, acc_t inv_lam_pos,
                      acc_t log2_scale_pos, acc_t log2_scale_neg,
                      ImageSums<acc_t>* __restrict__ partial,
                      ChunkCounts* __restrict__ counts) {
  extern __shared__ int codes[];
  __shared__ bool chunk_non_finite;
  const Chunk chunk = this_chunk(anchors, classes, per_chunk);
  const scalar_t* x = logits + chunk.first_anchor * classes;
  const int64_t* lab = labels + chunk.first_anchor;
  const float* w = weights ? weights + chunk.first_anchor : nullptr;
  const unsigned int num_classes = static_cast<unsigned int>(classes);
  ChunkPart<acc_t> mine;
  if (num_classes <= 1) {
    mine =
        anchor_part(chunk, x, lab, w, num_classes, inv_lam_pos, log2_scale_neg);
  } else {
    mine = stage_codes(chunk, x, lab, w, num_classes, inv_lam_pos, codes);
    for_each_element<false>(
        x, static_cast<scalar_t*>(nullptr), chunk.elements, num_classes,
        [&](acc_t v, unsigned int a, unsigned int k) {
          mine.probe = fma(v, acc_t(0), mine.probe);
          const int code = codes[a];
          add_negative(mine.sums.neg, fast_sigmoid(v).p,
                       code >= 0 && k != unsigned(code), log2_scale_neg);
          return acc_t(0);
        });
  }
  const ChunkPart<acc_t> part =
      reduce_chunk(mine, log2_scale_pos, log2_scale_neg);
  const unsigned int block = blockIdx.y * gridDim.x + blockIdx.x;
  if (threadIdx.x == 0) {
    const bool non_finite = part.probe != acc_t(0);
    chunk_non_finite = non_finite;
    partial[block] = non_finite ? nan_image<acc_t>() : part.sums;
    counts[block] = ChunkCounts{{0u, part.bad_labels, part.nan_weights}};
  }
  __syncthreads();
  if (chunk_non_finite) {
    count_non_finite(x, chunk.elements, &counts[block].of[kNonFiniteLogits]);
  }
}

template <typename acc_t>
struct MergeImages {
  acc_t inv_lam_pos, inv_lam_neg;
  __device__ ImageSums<acc_t> operator()(const ImageSums<acc_t>& a,
                                         const ImageSums<acc_t>& b) const {
    return merge(a, b, inv_lam_pos, inv_lam_neg);
  }
};

// The batch's counts, in 64 bits.
struct TotalCounts {
  unsigned long long of[kNumCounts];
};

struct AddTotals {
  __device__ TotalCounts operator()(const TotalCounts& a,
                                    const TotalCounts& b) const {
    TotalCounts sum;
#pragma unroll
    for (int i = 0; i < kNumCounts; ++i) sum.of[i] = a.of[i] + b.of[i];
    return sum;
  }
};

// Block b < batch merges image b's chunks in a fixed order and writes its
// statistics and (E-, E+); block 0 also adds up every chunk's counts into
// the status, and the flag the caller asserts on. At least one block, so
// the status is written for an empty batch too.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    image_stats_kernel(const ImageSums<acc_t>* __restrict__ partial,
                       const ChunkCounts* __restrict__ counts, int64_t batch,
                       int64_t chunks, acc_t inv_lam_pos, acc_t inv_lam_neg,
                       acc_t* __restrict__ stats, acc_t* __restrict__ e_neg,
                       acc_t* __restrict__ e_pos,
                       int64_t* __restrict__ status) {
  const int64_t b = blockIdx.x;
  if (b < batch) {
    const MergeImages<acc_t> combine{inv_lam_pos, inv_lam_neg};
    ImageSums<acc_t> sums = empty_image<acc_t>();
    for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
      sums = combine(sums, partial[b * chunks + c]);
    }
    sums = block_reduce(sums, combine);
    if (threadIdx.x == 0) {
      acc_t* image_stats = stats + b * kNumStats;
      write_stats(sums, image_stats);
      e_neg[b] = image_stats[kENeg];
      e_pos[b] = image_stats[kEPos];
    }
  }
  if (b != 0) return;
  TotalCounts total{};
  for (int64_t i = threadIdx.x; i < batch * chunks; i += kThreads) {
#pragma unroll
    for (int k = 0; k < kNumCounts; ++k) total.of[k] += counts[i].of[k];
  }
  total = block_reduce(total, AddTotals());
  if (threadIdx.x == 0) {
    for (int k = 0; k < kNumCounts; ++k) status[k] = int64_t(total.of[k]);
    status[kLabelsAndWeightsValid] =
        total.of[kBadLabels] == 0 && total.of[kNanWeights] == 0;
  }
}

// grad_element() of dr_expectation_math.h with fast_sigmoid and exp2;
// log2_scale = sign_inv_lam * log2(e), the forward's constant (rounded
// once from float64 on the host), so that q is the forward's weight.
template <typename acc_t>
struct FastGradConstants {
  GradConstants<acc_t> c;
  acc_t log2_scale;
};

template <typename acc_t>
__device__ __forceinline__ acc_t
fast_grad_element(acc_t x, const FastGradConstants<acc_t>& f) {
  const Sigmoid<acc_t> s = fast_sigmoid(x);
  const acc_t q = exp2_nonpositive((s.p - f.c.shift) * f.log2_scale);
  return f.c.coef * q *
         (acc_t(1) + (s.p - f.c.expectation) * f.c.sign_inv_lam) * s.slope;
}

// Every element's gradient as a negative's first (a plain elementwise pass,
// no anchor lookups), then, after a barrier, the few that are not: each
// positive rewritten, each ignored anchor's row zeroed. Only elements of
// this block's own chunk are rewritten, so the barrier orders the writes.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    grad_kernel(const scalar_t* __restrict__ logits,
                const int64_t* __restrict__ labels,
                const float* __restrict__ weights,
                const acc_t* __restrict__ stats,
                const acc_t* __restrict__ g_neg,
                const acc_t* __restrict__ g_pos, int64_t anchors,
                int64_t classes, int64_t per_chunk, acc_t inv_lam_pos,
                acc_t inv_lam_neg, acc_t log2_scale_pos, acc_t log2_scale_neg,
                scalar_t* __restrict__ grad) {
  const Chunk chunk = this_chunk(anchors, classes, per_chunk);
  const scalar_t* x = logits + chunk.first_anchor * classes;
  scalar_t* y = grad + chunk.first_anchor * classes;
  const int64_t* lab = labels + chunk.first_anchor;
  const float* w = weights ? weights + chunk.first_anchor : nullptr;
  const unsigned int num_classes = static_cast<unsigned int>(classes);
  const acc_t* image_stats = stats + blockIdx.y * kNumStats;
  const FastGradConstants<acc_t> neg = FastGradConstants<acc_t>{
      neg_constants(image_stats, g_neg[blockIdx.y], inv_lam_neg),
      log2_scale_neg};
  for_each_element<true>(x, y, chunk.elements, num_classes,
                         [&](acc_t v, unsigned int, unsigned int) {
                           return fast_grad_element(v, neg);
                         });
  __syncthreads();
  const FastGradConstants<acc_t> pos = FastGradConstants<acc_t>{
      pos_constants(image_stats, g_pos[blockIdx.y], inv_lam_pos),
      log2_scale_pos};
  // Warp by warp over the anchors (a warp-uniform loop: rows of kWarpSize
  // classes or more are zeroed by the whole warp, coalesced, not by one
  // thread alone).
  const unsigned int lane = threadIdx.x % kWarpSize;
  for (unsigned int first = threadIdx.x - lane; first < chunk.anchors;
       first += kThreads) {
    const unsigned int a = first + lane;
    const bool inside = a < chunk.anchors;
    const bool ignored = inside && w != nullptr && !(w[a] > 0.f);
    const int64_t label = inside && !ignored ? lab[a] : classes;
    if (label >= 0 && label < classes) {  // a bad label reads as background
      const unsigned int i = a * num_classes + static_cast<unsigned int>(label);
      narrow(fast_grad_element(static_cast<acc_t>(load(x[i])), pos), y[i]);
    }
    // Zeroing an ignored row: off the common path, so not unrolled (the
    // compiler's copies would sit on it).
    if (num_classes < kWarpSize) {
#pragma unroll 1
      for (unsigned int k = 0; ignored && k < num_classes; ++k) {
        narrow(acc_t(0), y[a * num_classes + k]);
      }
      continue;
    }
    for (unsigned int rows = __ballot_sync(0xffffffffu, ignored); rows != 0;
         rows &= rows - 1) {
      const unsigned int row = (first + __ffs(rows) - 1) * num_classes;
#pragma unroll 1
      for (unsigned int k = lane; k < num_classes; k += kWarpSize) {
        narrow(acc_t(0), y[row + k]);
      }
    }
  }
}

// Whole anchors per chunk: about `chunk` elements (kForwardChunk in the
// forward, kChunk in the backward), at least one anchor, and at most
// kMaxStagedAnchors (16 KB of staged codes: eight blocks of 256 threads an
// SM keep fitting in shared memory) where codes are staged; C <= 1 stages
// none (anchor_part()).
constexpr int64_t kMaxStagedAnchors = 4096;

int64_t anchors_per_chunk(int64_t classes, int64_t chunk) {
  if (classes <= 1) return chunk;
  return classes >= chunk ? 1 : min(chunk / classes, kMaxStagedAnchors);
}

// Grid of the chunked kernels: chunks of one image on x, images on y; and
// the dynamic shared memory of the forward's staged codes.
dim3 chunk_grid(int64_t batch, int64_t anchors, int64_t classes,
                int64_t chunk) {
  return dim3((unsigned)num_chunks(anchors, anchors_per_chunk(classes, chunk)),
              (unsigned)batch);
}

size_t codes_bytes(int64_t anchors, int64_t classes) {
  if (classes <= 1) return 0;
  return sizeof(int) *
         (size_t)min(anchors, anchors_per_chunk(classes, kForwardChunk));
}

// The forward's chunks per image, and its workspace: each chunk's partial
// sums, then its counts.
int64_t forward_chunks(int64_t anchors, int64_t classes) {
  return num_chunks(anchors, anchors_per_chunk(classes, kForwardChunk));
}

template <typename acc_t>
size_t partial_bytes(int64_t batch, int64_t anchors, int64_t classes) {
  return sizeof(ImageSums<acc_t>) * (size_t)batch *
         (size_t)forward_chunks(anchors, classes);
}

template <typename scalar_t>
cudaError_t forward_typed(const void* logits, const int64_t* labels,
                          const float* weights, int64_t batch, int64_t anchors,
                          int64_t classes, double lam_pos, double lam_neg,
                          void* workspace, void* stats, void* e_neg,
                          void* e_pos, int64_t* status, cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  const dim3 grid = chunk_grid(batch, anchors, classes, kForwardChunk);
  auto* partial = static_cast<ImageSums<acc_t>*>(workspace);
  auto* counts = reinterpret_cast<ChunkCounts*>(
      static_cast<char*>(workspace) +
      partial_bytes<acc_t>(batch, anchors, classes));
  const acc_t inv_lam_pos = acc_t(1.0 / lam_pos);
  const acc_t inv_lam_neg = acc_t(1.0 / lam_neg);
  if (batch > 0) {
    chunk_sums_kernel<scalar_t, acc_t>
        <<<grid, kThreads, codes_bytes(anchors, classes), stream>>>(
            static_cast<const scalar_t*>(logits), labels, weights, anchors,
            classes, anchors_per_chunk(classes, kForwardChunk), inv_lam_pos,
            acc_t(kLog2e / lam_pos), acc_t(kLog2e / lam_neg), partial, counts);
  }
  image_stats_kernel<acc_t>
      <<<(unsigned)(batch > 0 ? batch : 1), kThreads, 0, stream>>>(
          partial, counts, batch, grid.x, inv_lam_pos, inv_lam_neg,
          static_cast<acc_t*>(stats), static_cast<acc_t*>(e_neg),
          static_cast<acc_t*>(e_pos), status);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t backward_typed(const void* logits, const int64_t* labels,
                           const float* weights, const void* stats,
                           const void* g_neg, const void* g_pos, int64_t batch,
                           int64_t anchors, int64_t classes, double lam_pos,
                           double lam_neg, void* grad, cudaStream_t stream) {
  using acc_t = typename Acc<scalar_t>::type;
  if (batch * anchors * classes == 0) return cudaSuccess;
  grad_kernel<scalar_t, acc_t>
      <<<chunk_grid(batch, anchors, classes, kChunk), kThreads, 0, stream>>>(
          static_cast<const scalar_t*>(logits), labels, weights,
          static_cast<const acc_t*>(stats), static_cast<const acc_t*>(g_neg),
          static_cast<const acc_t*>(g_pos), anchors, classes,
          anchors_per_chunk(classes, kChunk), acc_t(1.0 / lam_pos),
          acc_t(1.0 / lam_neg), -acc_t(kLog2e / lam_pos),
          acc_t(kLog2e / lam_neg), static_cast<scalar_t*>(grad));
  return cudaGetLastError();
}

}  // namespace

size_t forward_workspace_bytes_cuda(DType dtype, int64_t batch, int64_t anchors,
                                    int64_t classes) {
  const size_t partial = dtype == DType::kFloat64
                             ? partial_bytes<double>(batch, anchors, classes)
                             : partial_bytes<float>(batch, anchors, classes);
  return partial + sizeof(ChunkCounts) * (size_t)batch *
                       (size_t)forward_chunks(anchors, classes);
}

#define DR_DISPATCH(dtype, FN, ...)          \
  switch (dtype) {                           \
    case DType::kFloat32:                    \
      return FN<float>(__VA_ARGS__);         \
    case DType::kFloat64:                    \
      return FN<double>(__VA_ARGS__);        \
    case DType::kFloat16:                    \
      return FN<__half>(__VA_ARGS__);        \
    case DType::kBFloat16:                   \
      return FN<__nv_bfloat16>(__VA_ARGS__); \
  }                                          \
  return cudaErrorInvalidValue;

cudaError_t forward_cuda(DType dtype, const void* logits, const int64_t* labels,
                         const float* weights, int64_t batch, int64_t anchors,
                         int64_t classes, double lam_pos, double lam_neg,
                         void* workspace, void* stats, void* e_neg, void* e_pos,
                         int64_t* status, cudaStream_t stream){
    DR_DISPATCH(dtype, forward_typed, logits, labels, weights, batch, anchors,
                classes, lam_pos, lam_neg, workspace, stats, e_neg, e_pos,
                status, stream)}

cudaError_t
    backward_cuda(DType dtype, const void* logits, const int64_t* labels,
                  const float* weights, const void* stats, const void* g_neg,
                  const void* g_pos, int64_t batch, int64_t anchors,
                  int64_t classes, double lam_pos, double lam_neg, void* grad,
                  cudaStream_t stream) {
  DR_DISPATCH(dtype, backward_typed, logits, labels, weights, stats, g_neg,
              g_pos, batch, anchors, classes, lam_pos, lam_neg, grad, stream)
}

}  // namespace dr_loss
