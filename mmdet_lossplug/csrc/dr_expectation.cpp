// Binding of the DR expectation op: checks, allocation, device dispatch.
// The only file that sees both PyTorch and the CUDA launchers.
#include <torch/extension.h>

#include "cpu/dr_expectation_cpu.h"
#include "dr_expectation_math.h"

#ifdef WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda/dr_expectation_cuda.h"
#endif

namespace dr_loss {
namespace {

at::ScalarType acc_type(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void check_inputs(const at::Tensor& logits, const at::Tensor& labels,
                  const c10::optional<at::Tensor>& weights) {
  TORCH_CHECK(logits.dim() == 3, "logits must be (B, A, C), got ",
              logits.sizes());
  TORCH_CHECK(logits.is_contiguous() && labels.is_contiguous(),
              "logits and labels must be contiguous");
  TORCH_CHECK(labels.scalar_type() == at::kLong, "labels must be int64");
  TORCH_CHECK(labels.dim() == 2 && labels.size(0) == logits.size(0) &&
                  labels.size(1) == logits.size(1),
              "labels must be (B, A) = ", logits.sizes().slice(0, 2),
              ", got ", labels.sizes());
  TORCH_CHECK(labels.device() == logits.device(),
              "labels must be on the device of logits");
  if (weights) {
    TORCH_CHECK(weights->scalar_type() == at::kFloat &&
                    weights->is_contiguous() &&
                    weights->sizes() == labels.sizes() &&
                    weights->device() == logits.device(),
                "label_weights must be contiguous float32 (B, A) on the "
                "device of logits");
  }
}

#ifdef WITH_CUDA
DType cuda_dtype(const at::Tensor& logits) {
  switch (logits.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "unsupported logits dtype ",
                         logits.scalar_type());
  }
}

const float* weights_ptr(const c10::optional<at::Tensor>& weights) {
  return weights ? weights->data_ptr<float>() : nullptr;
}
#endif

}  // namespace

// Returns stats (B, kNumStats): per image the softmax normalisers and
// (E-, E+) in columns kENeg, kEPos.
at::Tensor forward(const at::Tensor& logits, const at::Tensor& labels,
                   const c10::optional<at::Tensor>& weights, double lam_pos,
                   double lam_neg) {
  check_inputs(logits, labels, weights);
  auto stats = at::empty({logits.size(0), kNumStats},
                         logits.options().dtype(acc_type(logits)));
  if (logits.is_cuda()) {
#ifdef WITH_CUDA
    const c10::cuda::CUDAGuard guard(logits.device());
    const DType dtype = cuda_dtype(logits);
    auto workspace = at::empty(
        {(int64_t)forward_workspace_bytes_cuda(dtype, logits.size(0),
                                               logits.size(1),
                                               logits.size(2))},
        logits.options().dtype(at::kByte));
    const cudaError_t err = forward_cuda(
        dtype, logits.data_ptr(), labels.data_ptr<int64_t>(),
        weights_ptr(weights), logits.size(0), logits.size(1), logits.size(2),
        lam_pos, lam_neg, workspace.data_ptr(), stats.data_ptr(),
        at::cuda::getCurrentCUDAStream());
    TORCH_CHECK(err == cudaSuccess, "dr_expectation forward: ",
                cudaGetErrorString(err));
#else
    TORCH_CHECK(false, "mmdet_lossplug was built without CUDA support");
#endif
  } else {
    forward_cpu(logits, labels, weights, lam_pos, lam_neg, stats);
  }
  return stats;
}

at::Tensor backward(const at::Tensor& logits, const at::Tensor& labels,
                    const c10::optional<at::Tensor>& weights,
                    const at::Tensor& stats, const at::Tensor& g_neg,
                    const at::Tensor& g_pos, double lam_pos, double lam_neg) {
  check_inputs(logits, labels, weights);
  TORCH_CHECK(stats.is_contiguous() && g_neg.is_contiguous() &&
                  g_pos.is_contiguous(),
              "stats and gradients must be contiguous");
  TORCH_CHECK(g_neg.scalar_type() == acc_type(logits) &&
                  g_pos.scalar_type() == acc_type(logits),
              "gradients must be in the accumulation dtype");
  auto grad = at::empty_like(logits);
  if (logits.is_cuda()) {
#ifdef WITH_CUDA
    const c10::cuda::CUDAGuard guard(logits.device());
    const cudaError_t err = backward_cuda(
        cuda_dtype(logits), logits.data_ptr(), labels.data_ptr<int64_t>(),
        weights_ptr(weights), stats.data_ptr(), g_neg.data_ptr(),
        g_pos.data_ptr(), logits.size(0), logits.size(1), logits.size(2),
        lam_pos, lam_neg, grad.data_ptr(), at::cuda::getCurrentCUDAStream());
    TORCH_CHECK(err == cudaSuccess, "dr_expectation backward: ",
                cudaGetErrorString(err));
#else
    TORCH_CHECK(false, "mmdet_lossplug was built without CUDA support");
#endif
  } else {
    backward_cpu(logits, labels, weights, stats, g_neg, g_pos, lam_pos,
                 lam_neg, grad);
  }
  return grad;
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace dr_loss

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dr_expectation_forward", &dr_loss::forward,
        "DR loss per-image (E-, E+) and softmax statistics");
  m.def("dr_expectation_backward", &dr_loss::backward,
        "d(g_neg E- + g_pos E+)/d logits");
  m.def("has_cuda", &dr_loss::has_cuda, "built with the CUDA kernels");
  m.attr("ENEG_COLUMN") = static_cast<int>(dr_loss::kENeg);
  m.attr("EPOS_COLUMN") = static_cast<int>(dr_loss::kEPos);
}
