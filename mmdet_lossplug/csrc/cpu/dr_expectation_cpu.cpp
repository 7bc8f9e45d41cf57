// CPU kernels of DR loss's expectations. The forward reduces fixed chunks
// of anchors of each image in parallel (at::parallel_for) and merges each
// image's chunks in a fixed pairwise tree, so results do not depend on the
// number of threads. Within a chunk, a first pass finds the shifts (and
// counts bad input), a second one, over logits still in cache, sums; a
// chunk with a non-finite logit is NaN (dr_expectation_math.h).
//
// The loops over the classes of one anchor keep kLanes independent partial
// results (sums, maxima): plain fixed-length loops that GCC vectorises
// without -ffast-math (which would let it reorder one sum, but also assume
// away infinities and NaN), in the same order every run. Float16 and
// bfloat16 logits (and gradients) are converted a chunk at a time, so that
// those loops see floats only.
#include "dr_expectation_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "../dr_expectation_math.h"

namespace dr_loss {
namespace {

// Anchors per chunk of the first stage: 64 x 80 logits (20 KB in float32)
// stay in L1/L2 between the two passes.
constexpr int64_t kChunkAnchors = 64;
constexpr int kLanes = 16;

// One lane array per partial result, combined in a fixed pairwise order.
template <typename T>
T sum_lanes(T* lanes) {
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  return lanes[0];
}

// op(lane, class) over the classes of one anchor, kLanes at a time.
template <typename Op>
inline void for_each_class(int64_t classes, Op op) {
  const int64_t full = classes - classes % kLanes;
  for (int64_t base = 0; base < full; base += kLanes) {
    for (int l = 0; l < kLanes; ++l) op(l, base + l);
  }
  for (int64_t k = full; k < classes; ++k) op(static_cast<int>(k - full), k);
}

// n logits as acc_t: float16 / bfloat16 ones converted into `buffer` first
// (a chunk at a time, still in cache), since GCC vectorises loops that mix
// 16-bit loads with float math at half the width.
template <typename scalar_t, typename acc_t>
const acc_t* as_acc(const scalar_t* x, int64_t n, std::vector<acc_t>& buffer) {
  if constexpr (std::is_same<scalar_t, acc_t>::value) {
    return x;
  } else {
    buffer.resize(n);
    for (int64_t i = 0; i < n; ++i) buffer[i] = static_cast<acc_t>(x[i]);
    return buffer.data();
  }
}

// The anchor's label if it is in [0, C], else background (and counted).
inline int64_t checked_label(int64_t label, int64_t classes, int64_t* status) {
  if (label_in_range(label, classes)) return label;
  ++status[kBadLabels];
  return classes;
}

template <typename acc_t>
struct ChunkResult {
  ImageSums<acc_t> sums;
  int64_t status[kNumCounts];
};

// Anchors [begin, end) of `logits`, `labels` and `weights`.
template <typename acc_t>
ChunkResult<acc_t> chunk_sums(const acc_t* logits, const int64_t* labels,
                              const float* weights, int64_t begin, int64_t end,
                              int64_t classes, acc_t inv_lam_pos,
                              acc_t inv_lam_neg) {
  ChunkResult<acc_t> out{empty_image<acc_t>(), {}};
  int64_t* status = out.status;
  const acc_t inf = std::numeric_limits<acc_t>::infinity();
  // Pass 1: every logit's finiteness (a sum of x - x: 0 unless some x is
  // NaN or +-inf); the extreme logits of both sets.
  acc_t neg_max[kLanes], finite[kLanes], pos_min = inf;
  std::fill(neg_max, neg_max + kLanes, -inf);
  std::fill(finite, finite + kLanes, acc_t(0));
  bool any_neg = false, any_pos = false;
  for (int64_t a = begin; a < end; ++a) {
    const acc_t* x = logits + a * classes;
    const int64_t label = checked_label(labels[a], classes, status);
    bool valid = true;
    if (weights != nullptr) {
      status[kNanWeights] += weights[a] != weights[a];
      valid = weights[a] > 0.f;
    }
    for_each_class(classes, [&](int l, int64_t k) {
      const acc_t v = x[k];
      finite[l] += v - v;
      const acc_t negative = valid && k != label ? v : -inf;
      neg_max[l] = negative > neg_max[l] ? negative : neg_max[l];
    });
    if (!valid) continue;
    any_neg |= classes > (label < classes ? 1 : 0);
    if (label < classes) {
      const acc_t v = x[label];
      pos_min = v < pos_min ? v : pos_min;
      any_pos = true;
    }
  }
  if (!(sum_lanes(finite) == acc_t(0))) {  // the exact count, rarely needed
    for (int64_t i = begin * classes; i < end * classes; ++i) {
      const acc_t v = logits[i];
      status[kNonFiniteLogits] += (v - v) != acc_t(0);
    }
    out.sums = nan_image<acc_t>();  // the image's expectations are NaN
    return out;
  }
  acc_t max_logit = -inf;
  for (int l = 0; l < kLanes; ++l) {
    max_logit = neg_max[l] > max_logit ? neg_max[l] : max_logit;
  }
  // Pass 2: the softmax sums under those shifts.
  const acc_t neg_shift = any_neg ? sigmoid(max_logit).p : acc_t(0);
  const acc_t pos_shift = any_pos ? sigmoid(pos_min).p : acc_t(0);
  acc_t sum[kLanes] = {}, dot[kLanes] = {};
  acc_t pos_sum = 0, pos_dot = 0;
  for (int64_t a = begin; a < end; ++a) {
    if (weights != nullptr && !(weights[a] > 0.f)) continue;
    const acc_t* x = logits + a * classes;
    int64_t label = labels[a];
    if (!label_in_range(label, classes)) label = classes;
    for_each_class(classes, [&](int l, int64_t k) {
      const acc_t p = sigmoid(x[k]).p;
      const acc_t w = exp_nonpositive((p - neg_shift) * inv_lam_neg);
      const acc_t kept = k == label ? acc_t(0) : w;
      sum[l] += kept;
      dot[l] += kept * p;
    });
    if (label < classes) {
      const acc_t p = sigmoid(x[label]).p;
      const acc_t w = exp_nonpositive((pos_shift - p) * inv_lam_pos);
      pos_sum += w;
      pos_dot += w * p;
    }
  }
  out.sums.neg = SoftmaxSums<acc_t>{neg_shift, sum_lanes(sum), sum_lanes(dot)};
  out.sums.pos = SoftmaxSums<acc_t>{pos_shift, pos_sum, pos_dot};
  return out;
}

template <typename scalar_t, typename acc_t>
void forward_kernel(const scalar_t* logits, const int64_t* labels,
                    const float* weights, int64_t batch, int64_t anchors,
                    int64_t classes, acc_t inv_lam_pos, acc_t inv_lam_neg,
                    acc_t* stats, acc_t* e_neg, acc_t* e_pos, int64_t* status) {
  const int64_t chunks = num_chunks(anchors, kChunkAnchors);
  std::vector<ChunkResult<acc_t>> partial(batch * chunks);
  at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buffer;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, chunk = task % chunks;
      const int64_t first = b * anchors + chunk * kChunkAnchors;
      const int64_t stop =
          b * anchors + std::min(anchors, (chunk + 1) * kChunkAnchors);
      const acc_t* x =
          as_acc(logits + first * classes, (stop - first) * classes, buffer);
      partial[task] =
          chunk_sums(x, labels + first, weights ? weights + first : nullptr, 0,
                     stop - first, classes, inv_lam_pos, inv_lam_neg);
    }
  });
  std::fill(status, status + kNumCounts, 0);
  for (const auto& part : partial) {
    for (int i = 0; i < kNumCounts; ++i) status[i] += part.status[i];
  }
  status[kLabelsAndWeightsValid] =
      status[kBadLabels] == 0 && status[kNanWeights] == 0;
  // Second stage: each image's chunks merged pairwise (a fixed tree), which
  // keeps the rounding error growing with log(chunks), not chunks.
  for (int64_t b = 0; b < batch; ++b) {
    auto* image = partial.data() + b * chunks;
    for (int64_t stride = 1; stride < chunks; stride *= 2) {
      for (int64_t c = 0; c + stride < chunks; c += 2 * stride) {
        image[c].sums = merge(image[c].sums, image[c + stride].sums,
                              inv_lam_pos, inv_lam_neg);
      }
    }
    acc_t* image_stats = stats + b * kNumStats;
    write_stats(image[0].sums, image_stats);
    e_neg[b] = image_stats[kENeg];
    e_pos[b] = image_stats[kEPos];
  }
}

template <typename scalar_t, typename acc_t>
void backward_kernel(const scalar_t* logits, const int64_t* labels,
                     const float* weights, const acc_t* stats,
                     const acc_t* g_neg, const acc_t* g_pos, int64_t batch,
                     int64_t anchors, int64_t classes, acc_t inv_lam_pos,
                     acc_t inv_lam_neg, scalar_t* grad) {
  at::parallel_for(
      0, batch * anchors, kChunkAnchors, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> x_buffer, g_buffer;
        int64_t b = -1;
        GradConstants<acc_t> neg{}, pos{};
        for (int64_t block = begin; block < end; block += kChunkAnchors) {
          const int64_t stop = std::min(end, block + kChunkAnchors);
          const int64_t n = (stop - block) * classes;
          const acc_t* x = as_acc(logits + block * classes, n, x_buffer);
          // float32/64: straight into the gradient; else converted after.
          acc_t* g;
          if constexpr (std::is_same<scalar_t, acc_t>::value) {
            g = grad + block * classes;
          } else {
            g_buffer.resize(n);
            g = g_buffer.data();
          }
          for (int64_t a = block; a < stop; ++a) {
            if (a / anchors != b) {
              b = a / anchors;
              neg = neg_constants(stats + b * kNumStats, g_neg[b], inv_lam_neg);
              pos = pos_constants(stats + b * kNumStats, g_pos[b], inv_lam_pos);
            }
            const acc_t* xa = x + (a - block) * classes;
            acc_t* ga = g + (a - block) * classes;
            if (weights != nullptr && !(weights[a] > 0.f)) {
              std::fill(ga, ga + classes, acc_t(0));
              continue;
            }
            for_each_class(classes, [&](int, int64_t k) {
              ga[k] = grad_element(xa[k], neg);
            });
            const int64_t label = labels[a];
            if (label >= 0 && label < classes) {
              ga[label] = grad_element(xa[label], pos);
            }
          }
          if constexpr (!std::is_same<scalar_t, acc_t>::value) {
            scalar_t* out = grad + block * classes;
            for (int64_t i = 0; i < n; ++i)
              out[i] = static_cast<scalar_t>(g[i]);
          }
        }
      });
}

}  // namespace

void forward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                 const c10::optional<at::Tensor>& weights, double lam_pos,
                 double lam_neg, at::Tensor& stats, at::Tensor& e_neg,
                 at::Tensor& e_pos, at::Tensor& status) {
  const float* w = weights ? weights->data_ptr<float>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "dr_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t, acc_t>(
            logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w,
            logits.size(0), logits.size(1), logits.size(2),
            static_cast<acc_t>(1.0 / lam_pos),
            static_cast<acc_t>(1.0 / lam_neg), stats.data_ptr<acc_t>(),
            e_neg.data_ptr<acc_t>(), e_pos.data_ptr<acc_t>(),
            status.data_ptr<int64_t>());
      });
}

void backward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                  const c10::optional<at::Tensor>& weights,
                  const at::Tensor& stats, const at::Tensor& g_neg,
                  const at::Tensor& g_pos, double lam_pos, double lam_neg,
                  at::Tensor& grad) {
  const float* w = weights ? weights->data_ptr<float>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "dr_backward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        backward_kernel<scalar_t, acc_t>(
            logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w,
            stats.data_ptr<acc_t>(), g_neg.data_ptr<acc_t>(),
            g_pos.data_ptr<acc_t>(), logits.size(0), logits.size(1),
            logits.size(2), static_cast<acc_t>(1.0 / lam_pos),
            static_cast<acc_t>(1.0 / lam_neg), grad.data_ptr<scalar_t>());
      });
}

}  // namespace dr_loss
