// Per-element math of DR loss's expectations, shared by the CPU and CUDA
// kernels. Plain C++ (no PyTorch types), so the CUDA file compiles with
// nvcc alone.
//
// For one image, over every (anchor a, class k) with p = sigmoid(x):
//   negatives (k != label_a, w_a > 0): E- = sum softmax(p / lam_neg) p
//   positives (k == label_a, w_a > 0): E+ = sum softmax(-p / lam_pos) p
// Each softmax-weighted sum is accumulated "online" (running max, sum of
// exp(score - max), sum of exp(score - max) * p), so one pass suffices and
// partial states from chunks merge exactly: the two-stage reduction that
// keeps results deterministic without atomics.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define DR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DR_HOST_DEVICE inline
#endif

namespace dr_loss {

// The state of one online softmax-weighted sum.
template <typename acc_t>
struct SoftmaxSum {
  acc_t max;  // -inf while empty
  acc_t sum;  // sum exp(score - max)
  acc_t dot;  // sum exp(score - max) * p
};

template <typename acc_t>
DR_HOST_DEVICE SoftmaxSum<acc_t> empty_sum() {
  return SoftmaxSum<acc_t>{-INFINITY, acc_t(0), acc_t(0)};
}

template <typename acc_t>
DR_HOST_DEVICE void add(SoftmaxSum<acc_t>& s, acc_t score, acc_t p) {
  if (score > s.max) {
    const acc_t scale = exp(s.max - score);  // 0 when s was empty
    s.sum = s.sum * scale + acc_t(1);
    s.dot = s.dot * scale + p;
    s.max = score;
  } else {
    const acc_t w = exp(score - s.max);
    s.sum += w;
    s.dot += w * p;
  }
}

template <typename acc_t>
DR_HOST_DEVICE SoftmaxSum<acc_t> merge(const SoftmaxSum<acc_t>& a,
                                       const SoftmaxSum<acc_t>& b) {
  if (a.sum == acc_t(0)) return b;
  if (b.sum == acc_t(0)) return a;
  const acc_t m = a.max > b.max ? a.max : b.max;
  const acc_t sa = exp(a.max - m), sb = exp(b.max - m);
  return SoftmaxSum<acc_t>{m, a.sum * sa + b.sum * sb, a.dot * sa + b.dot * sb};
}

// Both sums of one image (or of one chunk of it).
template <typename acc_t>
struct ImageSums {
  SoftmaxSum<acc_t> neg, pos;
};

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> empty_image() {
  return ImageSums<acc_t>{empty_sum<acc_t>(), empty_sum<acc_t>()};
}

template <typename acc_t>
DR_HOST_DEVICE ImageSums<acc_t> merge(const ImageSums<acc_t>& a,
                                      const ImageSums<acc_t>& b) {
  return ImageSums<acc_t>{merge(a.neg, b.neg), merge(a.pos, b.pos)};
}

template <typename acc_t>
DR_HOST_DEVICE acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + exp(-x));
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
    add(s.neg, p * inv_lam_neg, p);
  } else if (sign < 0) {
    add(s.pos, -p * inv_lam_pos, p);
  }
}

// Per-image statistics the forward saves for the backward.
enum Stat { kNegMax, kNegSum, kPosMax, kPosSum, kENeg, kEPos, kNumStats };

template <typename acc_t>
DR_HOST_DEVICE void write_stats(const ImageSums<acc_t>& s, acc_t* stats) {
  stats[kNegMax] = s.neg.max;
  stats[kNegSum] = s.neg.sum;
  stats[kPosMax] = s.pos.max;
  stats[kPosSum] = s.pos.sum;
  // E- = 0 without negatives (all ignored), E+ = 1 without positives.
  stats[kENeg] = s.neg.sum > acc_t(0) ? s.neg.dot / s.neg.sum : acc_t(0);
  stats[kEPos] = s.pos.sum > acc_t(0) ? s.pos.dot / s.pos.sum : acc_t(1);
}

// d(g_neg E- + g_pos E+)/dx_j through the sigmoid (DR paper, appendix A):
// dE/dp_j = q_j (1 + s (p_j - E) / lam), s = +1 negatives, -1 positives.
template <typename acc_t>
DR_HOST_DEVICE acc_t grad_element(int sign, acc_t x, const acc_t* stats,
                                  acc_t g_neg, acc_t g_pos, acc_t inv_lam_pos,
                                  acc_t inv_lam_neg) {
  if (sign == 0) return acc_t(0);
  const acc_t p = sigmoid(x);
  acc_t d_e_d_p;
  if (sign > 0) {
    const acc_t q =
        exp(p * inv_lam_neg - stats[kNegMax]) / stats[kNegSum];
    d_e_d_p = g_neg * q * (acc_t(1) + (p - stats[kENeg]) * inv_lam_neg);
  } else {
    const acc_t q =
        exp(-p * inv_lam_pos - stats[kPosMax]) / stats[kPosSum];
    d_e_d_p = g_pos * q * (acc_t(1) - (p - stats[kEPos]) * inv_lam_pos);
  }
  return d_e_d_p * p * (acc_t(1) - p);
}

// Elements of one image per chunk of the first reduction stage: a fixed
// size, so the reduction order (and result) does not depend on threads.
constexpr int64_t kChunk = 8192;

DR_HOST_DEVICE int64_t num_chunks(int64_t elements) {
  return elements == 0 ? 1 : (elements + kChunk - 1) / kChunk;
}

}  // namespace dr_loss
