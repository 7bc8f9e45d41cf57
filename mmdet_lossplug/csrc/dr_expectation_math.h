// For one image, over every (anchor a, class k) with p = sigmoid(x):
//   negatives (k != label_a, w_a > 0): E- = sum softmax(p / lam_neg) p
//   positives (k == label_a, w_a > 0): E+ = sum softmax(-p / lam_pos) p
// Each softmax is shifted by its set's own extreme score (the largest p of
// the negatives, the smallest p of the positives), so every weight lies in
// [0, 1] and the extreme one is exactly 1, for any lam > 0. Partial sums of
// any split of the elements carry their own shift and merge by rescaling
// (merge()): the two-stage reduction that keeps results deterministic
// without atomics. Within a part the CPU kernel takes the shift from a
// cheap first pass over logits already in cache (sigmoid is monotone: the
// largest p is the sigmoid of the largest logit); the CUDA one keeps a
// running shift, rescaling its sums when it grows (one pass over memory).
//
// Only IEEE arithmetic that stays exact at the extremes: sigmoid and
// p (1 - p) from exp(-|x|), which never overflows; exp() only of arguments
// <= 0 (up to rounding).
//
// A non-finite logit anywhere in an image (an ignored anchor's too, as a
// weight of 0 times NaN is NaN in MMDetection's losses) makes both of the
// image's expectations NaN: the part that holds it is NaN (nan_image())
// and merge() propagates NaN, so the loss is NaN and AMP's GradScaler
// skips the step, as it does for any loss. Only sum == 0 marks an empty
// set: a NaN part is never mistaken for one.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define DR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DR_HOST_DEVICE inline
#endif

namespace dr_loss {

// Per-image statistics the forward saves for the backward.
enum Stat {
  kNegShift,  // max p over the negatives
  kNegSum,    // sum exp((p - shift) / lam_neg) over the negatives
  kPosShift,  // min p over the positives
  kPosSum,    // sum exp((shift - p) / lam_pos) over the positives
  kENeg,
  kEPos,
  kNumStats
};

// log2(e): the CUDA kernels' exponentials are exp2 of scores scaled by
// log2(e) / lam, which the smallest temperature accepted keeps finite.
constexpr double kLog2e = 1.4426950408889634;

// The forward's status (int64): counts of bad input elements it finds in
// its own pass, then 1 if labels and weights are valid (no bad label, no
// NaN weight), else 0: the flag the caller asserts on, so that the check
// costs no launch of its own beyond the assert.
enum Status {
  kNonFiniteLogits,
  kBadLabels,
  kNanWeights,
  kLabelsAndWeightsValid,
  kNumStatus
};
constexpr int kNumCounts = kLabelsAndWeightsValid;

// exp(t) for t <= 0 (a little above 0 is fine); 0 below -87, where float32
// leaves normal numbers. Cephes' expf polynomial (about 1 ulp), written
// branch-free so GCC vectorises it without -ffast-math, which would let it
// assume away the infinities and NaN this op must handle.
DR_HOST_DEVICE float exp_nonpositive(float t) {
#if defined(__CUDA_ARCH__)
  return expf(t);  // CUDA's expf: 2 ulp, and memory, not math, bounds us
#else
  const float clamped = t < -87.f ? -87.f : t;
  // Round-to-nearest by the 1.5 * 2^23 trick: no call, vectorisable.
  const float n = (clamped * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof(scale));
  return t < -87.f ? 0.f : y * scale;  // NaN stays NaN
#endif
}

DR_HOST_DEVICE double exp_nonpositive(double t) { return exp(t); }

// p = sigmoid(x) and dp/dx = p (1 - p), both from e = exp(-|x|) in (0, 1]:
// exact to rounding for every finite x (1 - p would cancel for large x).
template <typename acc_t>
struct Sigmoid {
  acc_t p, slope;
};

template <typename acc_t>
DR_HOST_DEVICE Sigmoid<acc_t> sigmoid(acc_t x) {
  const acc_t e = exp_nonpositive(x < acc_t(0) ? x : -x);  // NaN stays
  const acc_t r = acc_t(1) / (acc_t(1) + e);
  return Sigmoid<acc_t>{x >= acc_t(0) ? r : e * r, e * r * r};
}

// Softmax sums of a set (or of a part of it) under its own shift:
// sum = sum_j exp(sign (p_j - shift) / lam), dot = sum_j (...) p_j, with
// sign = +1 (negatives, shift = max p) or -1 (positives, shift = min p).
// sum = 0 marks an empty set (a non-empty one has a term equal to 1), NaN
// a set with a non-finite logit.
template <typename acc_t>
struct SoftmaxSums {
  acc_t shift, sum, dot;
};

template <typename acc_t>
DR_HOST_DEVICE SoftmaxSums<acc_t> empty_sums() {
  return SoftmaxSums<acc_t>{acc_t(0), acc_t(0), acc_t(0)};
}

template <typename acc_t>
DR_HOST_DEVICE SoftmaxSums<acc_t> nan_sums() {
  const acc_t nan = acc_t(NAN);
  return SoftmaxSums<acc_t>{nan, nan, nan};
}

template <typename acc_t>
DR_HOST_DEVICE SoftmaxSums<acc_t> merge(const SoftmaxSums<acc_t>& a,
                                        const SoftmaxSums<acc_t>& b,
                                        acc_t sign_inv_lam) {
  if (b.sum == acc_t(0)) return a;
  if (a.sum == acc_t(0)) return b;
  const bool a_first =
      sign_inv_lam > acc_t(0) ? a.shift >= b.shift : a.shift <= b.shift;
  const SoftmaxSums<acc_t>& top = a_first ? a : b;
  const SoftmaxSums<acc_t>& low = a_first ? b : a;
  const acc_t scale = exp_nonpositive((low.shift - top.shift) * sign_inv_lam);
  return SoftmaxSums<acc_t>{top.shift, top.sum + low.sum * scale,
                            top.dot + low.dot * scale};
}

// Both sets of one image (or of a part of it).
template <typename acc_t>
struct ImageSums {
  SoftmaxSums<acc_t> neg, pos;
};

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> empty_image() {
  return ImageSums<acc_t>{empty_sums<acc_t>(), empty_sums<acc_t>()};
}

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> nan_image() {
  return ImageSums<acc_t>{nan_sums<acc_t>(), nan_sums<acc_t>()};
}

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> merge(const ImageSums<acc_t>& a,
                                      const ImageSums<acc_t>& b,
                                      acc_t inv_lam_pos, acc_t inv_lam_neg) {
  return ImageSums<acc_t>{merge(a.neg, b.neg, inv_lam_neg),
                          merge(a.pos, b.pos, -inv_lam_pos)};
}

template <typename acc_t>
DR_HOST_DEVICE void write_stats(const ImageSums<acc_t>& s, acc_t* stats) {
  stats[kNegShift] = s.neg.shift;
  stats[kNegSum] = s.neg.sum;
  stats[kPosShift] = s.pos.shift;
  stats[kPosSum] = s.pos.sum;
  // E- = 0 without negatives (all ignored), E+ = 1 without positives;
  // NaN sums give NaN.
  stats[kENeg] = s.neg.sum != acc_t(0) ? s.neg.dot / s.neg.sum : acc_t(0);
  stats[kEPos] = s.pos.sum != acc_t(0) ? s.pos.dot / s.pos.sum : acc_t(1);
}

// d(g E)/dx_j through the sigmoid (DR paper, appendix A):
// dE/dp_j = q_j (1 + s (p_j - E) / lam), s = +1 negatives, -1 positives,
// q_j = exp(s (p_j - shift) / lam) / sum. The backward's per-image
// constants: coef = g / sum (NaN for a NaN image: its gradient is NaN),
// and the stats' shift and E.
template <typename acc_t>
struct GradConstants {
  acc_t coef, shift, expectation, sign_inv_lam;
};

template <typename acc_t>
DR_HOST_DEVICE GradConstants<acc_t> neg_constants(const acc_t* stats,
                                                  acc_t g_neg,
                                                  acc_t inv_lam_neg) {
  const acc_t sum = stats[kNegSum];
  return GradConstants<acc_t>{sum != acc_t(0) ? g_neg / sum : acc_t(0),
                              stats[kNegShift], stats[kENeg], inv_lam_neg};
}

template <typename acc_t>
DR_HOST_DEVICE GradConstants<acc_t> pos_constants(const acc_t* stats,
                                                  acc_t g_pos,
                                                  acc_t inv_lam_pos) {
  const acc_t sum = stats[kPosSum];
  return GradConstants<acc_t>{sum != acc_t(0) ? g_pos / sum : acc_t(0),
                              stats[kPosShift], stats[kEPos], -inv_lam_pos};
}

template <typename acc_t>
DR_HOST_DEVICE acc_t grad_element(acc_t x, const GradConstants<acc_t>& c) {
  const Sigmoid<acc_t> s = sigmoid(x);
  const acc_t q = exp_nonpositive((s.p - c.shift) * c.sign_inv_lam);
  return c.coef * q * (acc_t(1) + (s.p - c.expectation) * c.sign_inv_lam) *
         s.slope;
}

// A label in [0, C] (C = background); anything else is counted as bad
// input and read as background, so no label ever indexes memory.
DR_HOST_DEVICE bool label_in_range(int64_t label, int64_t classes) {
  return label >= 0 && label <= classes;
}

// Elements of one image per chunk of the CUDA kernels (one block each): a
// fixed size, so the forward's reduction order (and result) does not
// depend on threads. The backward's chunk: 128 elements a thread, enough
// blocks in flight for its memory-bound pass. The forward's is twice that
// (256 a thread): its per-block work (the block reduction and the second
// stage) is spread over twice the elements, and, bound by instruction
// issue, it needs fewer blocks in flight to keep the schedulers busy.
constexpr int64_t kChunk = 32768;
constexpr int64_t kForwardChunk = 65536;
static_assert(kForwardChunk % kChunk == 0, "the forward's chunk is whole");

DR_HOST_DEVICE int64_t num_chunks(int64_t elements, int64_t chunk = kChunk) {
  return elements == 0 ? 1 : (elements + chunk - 1) / chunk;
}

}  // namespace dr_loss
