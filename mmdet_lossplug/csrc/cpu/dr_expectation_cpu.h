#pragma once

#include <torch/extension.h>

namespace dr_loss {

// Inputs checked and contiguous (see dr_expectation.cpp). stats:
// (B, kNumStats) in the accumulation type (float64 for float64 logits, else
// float32), written by the forward and read by the backward; e_neg, e_pos:
// (B,) in the same type, its kENeg and kEPos; status: (kNumStatus,) int64,
// the Status of dr_expectation_math.h. Every element is written.
void forward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                 const c10::optional<at::Tensor>& weights, double lam_pos,
                 double lam_neg, at::Tensor& stats, at::Tensor& e_neg,
                 at::Tensor& e_pos, at::Tensor& status);

void backward_cpu(const at::Tensor& logits, const at::Tensor& labels,
                  const c10::optional<at::Tensor>& weights,
                  const at::Tensor& stats, const at::Tensor& g_neg,
                  const at::Tensor& g_pos, double lam_pos, double lam_neg,
                  at::Tensor& grad);

}  // namespace dr_loss
