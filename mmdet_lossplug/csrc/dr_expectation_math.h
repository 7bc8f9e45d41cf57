// For one image, over every (anchor a, class k) with p = sigmoid(x):
//   negatives (k != label_a, w_a > 0): E- = sum softmax(p / lam_neg) p
//   positives (k == label_a, w_a > 0): E+ = sum softmax(-p / lam_pos) p
// Since p lies in (0, 1), each softmax is shifted by the largest score its
// set could have (1 / lam_neg, resp. 0) instead of the set's actual max:
// every weight is in [exp(-1 / lam), 1], so nothing overflows, and nothing
// underflows while 1 / lam <= kMaxInvLambda. Sums from any split of the
// elements then merge by plain addition: the two-stage reduction that keeps
// results deterministic without atomics, and no extra pass for the max.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define DR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DR_HOST_DEVICE inline
#endif

namespace dr_loss {

// exp(-80) = 1.8e-35 is still a normal float32.
constexpr double kMaxInvLambda = 80.0;

// Unnormalised softmax sums of one image (or of a part of it).
template <typename acc_t>
struct ImageSums {
  acc_t neg_sum, neg_dot;  // sum w, sum w * p over negatives
  acc_t pos_sum, pos_dot;  // the same over positives
};

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> empty_image() {
  return ImageSums<acc_t>{acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
}

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> merge(const ImageSums<acc_t>& a,
                                      const ImageSums<acc_t>& b) {
  return ImageSums<acc_t>{a.neg_sum + b.neg_sum, a.neg_dot + b.neg_dot,
                          a.pos_sum + b.pos_sum, a.pos_dot + b.pos_dot};
}

template <typename acc_t>
DR_HOST_DEVICE acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + exp(-x));
}

// exp(p / lam_neg - 1 / lam_neg): a negative's softmax weight.
template <typename acc_t>
DR_HOST_DEVICE acc_t neg_weight(acc_t p, acc_t inv_lam_neg) {
  return exp((p - acc_t(1)) * inv_lam_neg);
}

// exp(-p / lam_pos - 0): a positive's softmax weight.
template <typename acc_t>
DR_HOST_DEVICE acc_t pos_weight(acc_t p, acc_t inv_lam_pos) {
  return exp(-p * inv_lam_pos);
}

// Element j = (a, k) of an image: 0 ignored, +1 negative, -1 positive.
DR_HOST_DEVICE int element_sign(const int64_t* labels, const float* weights,
                                int64_t anchor, int64_t cls) {
  if (weights != nullptr && !(weights[anchor] > 0.f)) return 0;
  return labels[anchor] == cls ? -1 : 1;
}

template <typename acc_t>
DR_HOST_DEVICE void add_element(ImageSums<acc_t>& s, int sign, acc_t x,
                                acc_t inv_lam_pos, acc_t inv_lam_neg) {
  const acc_t p = sigmoid(x);
  if (sign > 0) {
    const acc_t w = neg_weight(p, inv_lam_neg);
    s.neg_sum += w;
    s.neg_dot += w * p;
  } else if (sign < 0) {
    const acc_t w = pos_weight(p, inv_lam_pos);
    s.pos_sum += w;
    s.pos_dot += w * p;
  }
}

// Per-image statistics the forward saves for the backward.
enum Stat { kNegSum, kPosSum, kENeg, kEPos, kNumStats };

template <typename acc_t>
DR_HOST_DEVICE void write_stats(const ImageSums<acc_t>& s, acc_t* stats) {
  stats[kNegSum] = s.neg_sum;
  stats[kPosSum] = s.pos_sum;
  // E- = 0 without negatives (all ignored), E+ = 1 without positives.
  stats[kENeg] = s.neg_sum > acc_t(0) ? s.neg_dot / s.neg_sum : acc_t(0);
  stats[kEPos] = s.pos_sum > acc_t(0) ? s.pos_dot / s.pos_sum : acc_t(1);
}

// d(g E)/dx_j through the sigmoid (DR paper, appendix A):
// dE/dp_j = q_j (1 + s (p_j - E) / lam), s = +1 negatives, -1 positives.
template <typename acc_t>
DR_HOST_DEVICE acc_t neg_grad(acc_t p, const acc_t* stats, acc_t g_neg,
                              acc_t inv_lam_neg) {
  const acc_t q = neg_weight(p, inv_lam_neg) / stats[kNegSum];
  return g_neg * q * (acc_t(1) + (p - stats[kENeg]) * inv_lam_neg) * p *
         (acc_t(1) - p);
}

template <typename acc_t>
DR_HOST_DEVICE acc_t pos_grad(acc_t p, const acc_t* stats, acc_t g_pos,
                              acc_t inv_lam_pos) {
  const acc_t q = pos_weight(p, inv_lam_pos) / stats[kPosSum];
  return g_pos * q * (acc_t(1) - (p - stats[kEPos]) * inv_lam_pos) * p *
         (acc_t(1) - p);
}

template <typename acc_t>
DR_HOST_DEVICE acc_t grad_element(int sign, acc_t x, const acc_t* stats,
                                  acc_t g_neg, acc_t g_pos, acc_t inv_lam_pos,
                                  acc_t inv_lam_neg) {
  if (sign == 0) return acc_t(0);
  const acc_t p = sigmoid(x);
  return sign > 0 ? neg_grad(p, stats, g_neg, inv_lam_neg)
                  : pos_grad(p, stats, g_pos, inv_lam_pos);
}

// Elements of one image per chunk of the first reduction stage: a fixed
// size, so the reduction order (and result) does not depend on threads.
constexpr int64_t kChunk = 8192;

DR_HOST_DEVICE int64_t num_chunks(int64_t elements, int64_t chunk = kChunk) {
  return elements == 0 ? 1 : (elements + chunk - 1) / chunk;
}

}  // namespace dr_loss
