// CPU kernels of DR loss's expectations. The forward sums fixed chunks of
// anchors of each image in parallel (at::parallel_for) and merges each
// image's chunks in a fixed pairwise tree, so results do not depend on the
// number of threads. Both passes loop over anchors, then over the classes
// of one anchor in a branch-free loop the compiler vectorises (setup.py
// compiles with -ffast-math for glibc's vector exp, and with AVX2 + FMA
// where the build machine has them), with the anchor's one positive class
// handled after it.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <vector>

#include "../dr_expectation_math.h"
#include "dr_expectation_cpu.h"

namespace dr_loss {
namespace {

// Anchors per chunk of the first stage (about 10k elements at C = 80).
constexpr int64_t kChunkAnchors = 128;

template <typename scalar_t, typename acc_t>
ImageSums<acc_t> anchor_sums(const scalar_t* x, int64_t classes,
                             int64_t label, acc_t inv_lam_pos,
                             acc_t inv_lam_neg) {
  acc_t sum = 0, dot = 0;
  // 32-bit class indices: baseline x86-64 (SSE2) has no 64-bit integer
  // compare, and with it this loop would not vectorise.
  const int32_t num_classes = static_cast<int32_t>(classes);
  const int32_t positive = static_cast<int32_t>(label);
  for (int32_t k = 0; k < num_classes; ++k) {
    const acc_t p = sigmoid(static_cast<acc_t>(x[k]));
    const acc_t w = k == positive ? acc_t(0) : neg_weight(p, inv_lam_neg);
    sum += w;
    dot += w * p;
  }
  ImageSums<acc_t> sums{sum, dot, acc_t(0), acc_t(0)};
  if (label < classes) {
    add_element(sums, -1, static_cast<acc_t>(x[label]), inv_lam_pos,
                inv_lam_neg);
  }
  return sums;
}

template <typename scalar_t, typename acc_t>
void forward_kernel(const scalar_t* logits, const int64_t* labels,
                    const float* weights, int64_t batch, int64_t anchors,
                    int64_t classes, acc_t inv_lam_pos, acc_t inv_lam_neg,
                    acc_t* stats) {
  const int64_t chunks = num_chunks(anchors, kChunkAnchors);
  std::vector<ImageSums<acc_t>> partial(batch * chunks);
  at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, chunk = task % chunks;
      ImageSums<acc_t> sums = empty_image<acc_t>();
      const int64_t stop = std::min(anchors, (chunk + 1) * kChunkAnchors);
      for (int64_t a = b * anchors + chunk * kChunkAnchors;
           a < b * anchors + stop; ++a) {
        if (weights != nullptr && !(weights[a] > 0.f)) continue;
        sums = merge(sums, anchor_sums(logits + a * classes, classes,
                                       labels[a], inv_lam_pos, inv_lam_neg));
      }
      partial[task] = sums;
    }
  });
  // Second stage: each image's chunks merged pairwise (a fixed tree), which
  // keeps the rounding error growing with log(chunks), not chunks.
  for (int64_t b = 0; b < batch; ++b) {
    ImageSums<acc_t>* image = partial.data() + b * chunks;
    for (int64_t stride = 1; stride < chunks; stride *= 2) {
      for (int64_t c = 0; c + stride < chunks; c += 2 * stride) {
        image[c] = merge(image[c], image[c + stride]);
      }
    }
    write_stats(image[0], stats + b * kNumStats);
  }
}

template <typename scalar_t, typename acc_t>
void anchor_grad(const scalar_t* x, int64_t classes, int64_t label,
                 const acc_t* stats, acc_t g_neg, acc_t g_pos,
                 acc_t inv_lam_pos, acc_t inv_lam_neg, scalar_t* grad) {
  for (int64_t k = 0; k < classes; ++k) {
    grad[k] = static_cast<scalar_t>(neg_grad(
        sigmoid(static_cast<acc_t>(x[k])), stats, g_neg, inv_lam_neg));
  }
  if (label < classes) {
    grad[label] = static_cast<scalar_t>(pos_grad(
        sigmoid(static_cast<acc_t>(x[label])), stats, g_pos, inv_lam_pos));
  }
}

template <typename scalar_t, typename acc_t>
void backward_kernel(const scalar_t* logits, const int64_t* labels,
                     const float* weights, const acc_t* stats,
                     const acc_t* g_neg, const acc_t* g_pos, int64_t batch,
                     int64_t anchors, int64_t classes, acc_t inv_lam_pos,
                     acc_t inv_lam_neg, scalar_t* grad) {
  at::parallel_for(0, batch * anchors, kChunkAnchors, [&](int64_t begin,
                                                          int64_t end) {
    for (int64_t a = begin; a < end; ++a) {
      const int64_t b = a / anchors;
      const scalar_t* x = logits + a * classes;
      scalar_t* g = grad + a * classes;
      if (weights != nullptr && !(weights[a] > 0.f)) {
        std::fill(g, g + classes, scalar_t(0));
        continue;
      }
      anchor_grad(x, classes, labels[a], stats + b * kNumStats, g_neg[b],
                  g_pos[b], inv_lam_pos, inv_lam_neg, g);
    }
  });
}

}  // namespace

void forward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                 const c10::optional<at::Tensor>& weights, double lam_pos,
                 double lam_neg, at::Tensor& stats) {
  const float* w = weights ? weights->data_ptr<float>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "dr_forward_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t, acc_t>(
            logits.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w,
            logits.size(0), logits.size(1), logits.size(2),
            static_cast<acc_t>(1.0 / lam_pos),
            static_cast<acc_t>(1.0 / lam_neg), stats.data_ptr<acc_t>());
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
