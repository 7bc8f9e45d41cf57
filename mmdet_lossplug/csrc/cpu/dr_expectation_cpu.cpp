// CPU kernels of DR loss's expectations: chunks of each image reduced in
// parallel (at::parallel_for), merged per image in chunk order, so results
// do not depend on the number of threads.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <vector>

#include "../dr_expectation_math.h"
#include "dr_expectation_cpu.h"

namespace dr_loss {
namespace {

// A chunk is summed in leaves of this many elements merged in order: a
// plain running fp32 sum over a whole chunk loses about 1e-5 relative,
// leaves keep it near the pairwise-summed reference (as the CUDA kernel's
// 32 elements per thread do).
constexpr int64_t kLeaf = 256;

template <typename scalar_t, typename acc_t>
void forward_kernel(const scalar_t* logits, const int64_t* labels,
                    const float* weights, int64_t batch, int64_t anchors,
                    int64_t classes, acc_t inv_lam_pos, acc_t inv_lam_neg,
                    acc_t* stats) {
  const int64_t elements = anchors * classes;
  const int64_t chunks = num_chunks(elements);
  std::vector<ImageSums<acc_t>> partial(batch * chunks);
  at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, chunk = task % chunks;
      const scalar_t* x = logits + b * elements;
      const int64_t* lab = labels + b * anchors;
      const float* w = weights ? weights + b * anchors : nullptr;
      ImageSums<acc_t> sums = empty_image<acc_t>();
      const int64_t stop = std::min(elements, (chunk + 1) * kChunk);
      for (int64_t start = chunk * kChunk; start < stop; start += kLeaf) {
        ImageSums<acc_t> leaf = empty_image<acc_t>();
        for (int64_t i = start; i < std::min(stop, start + kLeaf); ++i) {
          add_element(leaf, element_sign(lab, w, i / classes, i % classes),
                      static_cast<acc_t>(x[i]), inv_lam_pos, inv_lam_neg);
        }
        sums = merge(sums, leaf);
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
void backward_kernel(const scalar_t* logits, const int64_t* labels,
                     const float* weights, const acc_t* stats,
                     const acc_t* g_neg, const acc_t* g_pos, int64_t batch,
                     int64_t anchors, int64_t classes, acc_t inv_lam_pos,
                     acc_t inv_lam_neg, scalar_t* grad) {
  const int64_t elements = anchors * classes;
  at::parallel_for(0, batch * elements, kChunk, [&](int64_t begin,
                                                    int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / elements, i = idx % elements;
      const float* w = weights ? weights + b * anchors : nullptr;
      const int sign =
          element_sign(labels + b * anchors, w, i / classes, i % classes);
      grad[idx] = static_cast<scalar_t>(grad_element(
          sign, static_cast<acc_t>(logits[idx]), stats + b * kNumStats,
          g_neg[b], g_pos[b], inv_lam_pos, inv_lam_neg));
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
