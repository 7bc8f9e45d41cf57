#pragma once

#include <torch/extension.h>

namespace dr_loss {

// Inputs checked and contiguous (see dr_expectation.cpp). stats:
// (B, kNumStats) in the accumulation type (float64 for float64 logits, else
// float32), written by the forward and read by the backward; status:
// (kNumStatus,) int64 counts of bad input elements.
void forward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                 const c10::optional<at::Tensor>& weights, double lam_pos,
                 double lam_neg, at::Tensor& stats, at::Tensor& status);

void backward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                  const c10::optional<at::Tensor>& weights,
                  const at::Tensor& stats, const at::Tensor& g_neg,
                  const at::Tensor& g_pos, double lam_pos, double lam_neg,
                  at::Tensor& grad);

}  // namespace dr_loss
