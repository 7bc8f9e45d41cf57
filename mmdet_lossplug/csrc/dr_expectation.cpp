// The DR expectation op as PyTorch operators (mmdet_lossplug::dr_expectation
// and its backward): schemas, checks, allocation, one kernel per dispatch
// key. The only file that sees both PyTorch and the CUDA launchers.
//
// Every entry point checks what it is handed on the host (free: shapes,
// dtypes, devices, sizes of the auxiliary inputs, the temperatures) and
// makes its inputs contiguous. Values it cannot check without reading the
// data (non-finite logits, labels outside [0, C], NaN weights) the forward
// counts in its own pass into `status`. A non-finite logit is no error: it
// makes its image's expectations NaN (dr_expectation_math.h), as a training
// loss must for AMP. Bad labels and NaN weights are: the CPU op raises on
// them at once, the CUDA one leaves them to the caller (mmdet_lossplug.ops
// checks `status` without a host sync). A bad label is read as background
// and never indexes memory, in both passes.
#include <torch/extension.h>
#include <torch/library.h>

#include <cfloat>
#include <cmath>
#include <mutex>
#include <utility>

#include "cpu/dr_expectation_cpu.h"
#include "dr_expectation_math.h"

#ifdef WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/dr_expectation_cuda.h"
#endif

namespace dr_loss {
namespace {

at::ScalarType acc_type(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// A temperature whose log2(e) / lam is a finite float32: the CUDA kernels
// scale scores by it (exp2), and an infinite scale makes 0 * inf = NaN of
// a score equal to its set's extreme. The bound of ops/_arguments.py.
void check_lambda(double lam, const char* name) {
  TORCH_CHECK_VALUE(std::isfinite(lam) && lam >= kLog2e / FLT_MAX, name,
                    " must be a finite number >= ", kLog2e / FLT_MAX,
                    " (log2(e)/", name, " a finite float32), got ", lam);
}

struct Inputs {
  at::Tensor logits, labels;
  c10::optional<at::Tensor> weights;
};

Inputs checked_inputs(const at::Tensor& logits, const at::Tensor& labels,
                      const c10::optional<at::Tensor>& weights, double lam_pos,
                      double lam_neg) {
  TORCH_CHECK_VALUE(logits.dim() == 3, "logits must be (B, A, C), got ",
                    logits.sizes());
  const auto dtype = logits.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble ||
                       dtype == at::kHalf || dtype == at::kBFloat16,
                   "logits must be float32, float64, float16 or bfloat16, "
                   "got ",
                   dtype);
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong,
                   "labels must be int64, got ", labels.scalar_type());
  TORCH_CHECK_VALUE(labels.dim() == 2 && labels.size(0) == logits.size(0) &&
                        labels.size(1) == logits.size(1),
                    "labels must be (B, A) = ", logits.sizes().slice(0, 2),
                    ", got ", labels.sizes());
  TORCH_CHECK_VALUE(labels.device() == logits.device(), "labels is on ",
                    labels.device(), " but logits on ", logits.device(),
                    "; put them on one device");
  if (weights) {
    TORCH_CHECK_TYPE(weights->scalar_type() == at::kFloat,
                     "label_weights must be float32, got ",
                     weights->scalar_type());
    TORCH_CHECK_VALUE(weights->sizes() == labels.sizes(),
                      "label_weights must be (B, A) = ", labels.sizes(),
                      ", got ", weights->sizes());
    TORCH_CHECK_VALUE(weights->device() == logits.device(),
                      "label_weights is on ", weights->device(),
                      " but logits on ", logits.device(),
                      "; put them on one device");
  }
  check_lambda(lam_pos, "lam_pos");
  check_lambda(lam_neg, "lam_neg");
  // Labels are compared with C in int64, and C in int32 on the CPU.
  TORCH_CHECK_VALUE(logits.size(2) < INT32_MAX,
                    "too many classes: ", logits.size(2));
  return Inputs{logits.contiguous(), labels.contiguous(),
                weights ? c10::optional<at::Tensor>(weights->contiguous())
                        : c10::nullopt};
}

// The per-image factors of the backward: (B,), floating, converted to the
// accumulation type.
at::Tensor checked_grad_factor(const at::Tensor& g, const char* name,
                               const at::Tensor& logits) {
  TORCH_CHECK_TYPE(at::isFloatingType(g.scalar_type()), name,
                   " must be floating point, got ", g.scalar_type());
  TORCH_CHECK_VALUE(g.dim() == 1 && g.size(0) == logits.size(0), name,
                    " must be (B,) = (", logits.size(0), ",), got ", g.sizes());
  TORCH_CHECK_VALUE(g.device() == logits.device(), name, " is on ", g.device(),
                    " but logits on ", logits.device(),
                    "; put them on one device");
  return g.to(acc_type(logits)).contiguous();
}

void check_stats(const at::Tensor& stats, const at::Tensor& logits) {
  TORCH_CHECK_TYPE(stats.scalar_type() == acc_type(logits), "stats must be ",
                   acc_type(logits), " (the forward's), got ",
                   stats.scalar_type());
  TORCH_CHECK_VALUE(stats.dim() == 2 && stats.size(0) == logits.size(0) &&
                        stats.size(1) == kNumStats,
                    "stats must be (B, ", int(kNumStats), ") = (",
                    logits.size(0), ", ", int(kNumStats), "), got ",
                    stats.sizes());
  TORCH_CHECK_VALUE(stats.device() == logits.device(), "stats is on ",
                    stats.device(), " but logits on ", logits.device(),
                    "; put them on one device");
}

// The backward's inputs, checked (as the forward's, plus the statistics
// and the per-image factors) and contiguous: one helper for both devices.
struct BackwardInputs {
  Inputs in;
  at::Tensor stats, g_neg, g_pos;
};

BackwardInputs checked_backward_inputs(const at::Tensor& grad_e_neg,
                                       const at::Tensor& grad_e_pos,
                                       const at::Tensor& logits,
                                       const at::Tensor& labels,
                                       const c10::optional<at::Tensor>& weights,
                                       const at::Tensor& stats, double lam_pos,
                                       double lam_neg) {
  Inputs in = checked_inputs(logits, labels, weights, lam_pos, lam_neg);
  check_stats(stats, logits);
  return BackwardInputs{std::move(in), stats.contiguous(),
                        checked_grad_factor(grad_e_neg, "grad_e_neg", logits),
                        checked_grad_factor(grad_e_pos, "grad_e_pos", logits)};
}

// The CPU kernel's bad labels and weights, raised at once (reading the
// status costs no sync).
void raise_on_bad_labels(const Inputs& in, const at::Tensor& status) {
  const int64_t* count = status.data_ptr<int64_t>();
  if (count[kBadLabels] != 0) {
    const int64_t classes = in.logits.size(2);
    const int64_t* labels = in.labels.data_ptr<int64_t>();
    const int64_t* bad = std::find_if(
        labels, labels + in.labels.numel(),
        [&](int64_t label) { return !label_in_range(label, classes); });
    TORCH_CHECK_VALUE(false, "labels has label ", *bad, " outside [0, ",
                      classes, "] (", count[kBadLabels], " such)");
  }
  TORCH_CHECK_VALUE(count[kNanWeights] == 0, "label_weights has ",
                    count[kNanWeights], " NaN value(s)");
}

// The CPU backward's gradient, in a buffer reused while nobody else holds
// it: a fresh gradient-sized allocation (100 MB and more) is page-faulted
// in 4 KB at a time on every call, which costs as long as computing it
// (CUDA's caching allocator does the same reuse on GPUs). Costs one idle
// gradient-sized buffer between calls.
at::Tensor reused_cpu_grad(const at::Tensor& like) {
  static std::mutex mutex;
  static c10::Storage spare;
  const std::lock_guard<std::mutex> lock(mutex);
  const size_t bytes = like.numel() * like.element_size();
  if (spare && spare.use_count() == 1 && spare.nbytes() == bytes) {
    return at::empty({0}, like.options())
        .set_(spare, 0, like.sizes(), like.strides());
  }
  auto grad = at::empty_like(like);
  spare = grad.storage();
  return grad;
}

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The forward's outputs (E-, E+, stats, status), allocated and never
// filled here: the kernels write every element, so the CUDA op launches
// nothing but its own kernels. One helper for both devices.
Outputs empty_outputs(const at::Tensor& logits, const at::Tensor& labels) {
  const auto acc = logits.options().dtype(acc_type(logits));
  const int64_t batch = logits.size(0);
  return {at::empty({batch}, acc), at::empty({batch}, acc),
          at::empty({batch, kNumStats}, acc),
          at::empty({kNumStatus}, labels.options())};
}

Outputs forward_cpu_op(const at::Tensor& logits, const at::Tensor& labels,
                       const c10::optional<at::Tensor>& weights, double lam_pos,
                       double lam_neg) {
  const Inputs in = checked_inputs(logits, labels, weights, lam_pos, lam_neg);
  Outputs out = empty_outputs(logits, labels);
  auto& [e_neg, e_pos, stats, status] = out;
  forward_cpu(in.logits, in.labels, in.weights, lam_pos, lam_neg, stats, e_neg,
              e_pos, status);
  raise_on_bad_labels(in, status);
  return out;
}

at::Tensor backward_cpu_op(const at::Tensor& grad_e_neg,
                           const at::Tensor& grad_e_pos,
                           const at::Tensor& logits, const at::Tensor& labels,
                           const c10::optional<at::Tensor>& weights,
                           const at::Tensor& stats, double lam_pos,
                           double lam_neg) {
  const BackwardInputs b = checked_backward_inputs(
      grad_e_neg, grad_e_pos, logits, labels, weights, stats, lam_pos, lam_neg);
  auto grad = reused_cpu_grad(b.in.logits);
  backward_cpu(b.in.logits, b.in.labels, b.in.weights, b.stats, b.g_neg,
               b.g_pos, lam_pos, lam_neg, grad);
  return grad;
}

#ifdef WITH_CUDA
DType cuda_dtype(const at::Tensor& logits) {
  switch (logits.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kDouble:
      return DType::kFloat64;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    default:
      TORCH_CHECK_TYPE(false, "unsupported logits dtype ",
                       logits.scalar_type());
  }
}

const float* weights_ptr(const c10::optional<at::Tensor>& weights) {
  return weights ? weights->data_ptr<float>() : nullptr;
}

void check_cuda_batch(const at::Tensor& logits) {
  TORCH_CHECK_VALUE(logits.size(0) <= 65535,
                    "the CUDA kernels take at most 65535 images, got ",
                    logits.size(0));
}

Outputs forward_cuda_op(const at::Tensor& logits, const at::Tensor& labels,
                        const c10::optional<at::Tensor>& weights,
                        double lam_pos, double lam_neg) {
  const Inputs in = checked_inputs(logits, labels, weights, lam_pos, lam_neg);
  check_cuda_batch(logits);
  const c10::cuda::CUDAGuard guard(logits.device());
  Outputs out = empty_outputs(logits, labels);
  auto& [e_neg, e_pos, stats, status] = out;
  const DType dtype = cuda_dtype(logits);
  auto workspace =
      at::empty({(int64_t)forward_workspace_bytes_cuda(
                    dtype, logits.size(0), logits.size(1), logits.size(2))},
                logits.options().dtype(at::kByte));
  const cudaError_t err = forward_cuda(
      dtype, in.logits.data_ptr(), in.labels.data_ptr<int64_t>(),
      weights_ptr(in.weights), logits.size(0), logits.size(1), logits.size(2),
      lam_pos, lam_neg, workspace.data_ptr(), stats.data_ptr(),
      e_neg.data_ptr(), e_pos.data_ptr(), status.data_ptr<int64_t>(),
      c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess,
              "dr_expectation forward: ", cudaGetErrorString(err));
  return out;
}

// The gradient at the logits' offset from a 16-byte boundary (the caching
// allocator's blocks start on one), so that the backward reads and writes
// whole 16-byte packs also for logits that are a view at an odd offset.
at::Tensor empty_aligned_like(const at::Tensor& logits) {
  const int64_t size = logits.element_size();
  const int64_t offset =
      static_cast<int64_t>(reinterpret_cast<uintptr_t>(logits.data_ptr()) %
                           16) /
      size;
  if (offset == 0) return at::empty_like(logits);
  return at::empty({logits.numel() + 16 / size}, logits.options())
      .narrow(0, offset, logits.numel())
      .view(logits.sizes());
}

at::Tensor backward_cuda_op(const at::Tensor& grad_e_neg,
                            const at::Tensor& grad_e_pos,
                            const at::Tensor& logits, const at::Tensor& labels,
                            const c10::optional<at::Tensor>& weights,
                            const at::Tensor& stats, double lam_pos,
                            double lam_neg) {
  const BackwardInputs b = checked_backward_inputs(
      grad_e_neg, grad_e_pos, logits, labels, weights, stats, lam_pos, lam_neg);
  check_cuda_batch(logits);
  const c10::cuda::CUDAGuard guard(logits.device());
  auto grad = empty_aligned_like(b.in.logits);
  const cudaError_t err = backward_cuda(
      cuda_dtype(logits), b.in.logits.data_ptr(),
      b.in.labels.data_ptr<int64_t>(), weights_ptr(b.in.weights),
      b.stats.data_ptr(), b.g_neg.data_ptr(), b.g_pos.data_ptr(),
      logits.size(0), logits.size(1), logits.size(2), lam_pos, lam_neg,
      grad.data_ptr(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess,
              "dr_expectation backward: ", cudaGetErrorString(err));
  return grad;
}
#endif

}  // namespace

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace dr_loss

TORCH_LIBRARY(mmdet_lossplug, m) {
  // (E-, E+) per image, the statistics the backward reads, and the status:
  // the counts of bad input elements (non-finite logits, bad labels, NaN
  // weights), then 1 if labels and weights are valid, else 0.
  m.def(
      "dr_expectation(Tensor logits, Tensor labels, Tensor? label_weights, "
      "float lam_pos, float lam_neg) -> (Tensor e_neg, Tensor e_pos, "
      "Tensor stats, Tensor status)");
  // d(grad_e_neg . E- + grad_e_pos . E+) / d logits.
  m.def(
      "dr_expectation_backward(Tensor grad_e_neg, Tensor grad_e_pos, "
      "Tensor logits, Tensor labels, Tensor? label_weights, Tensor stats, "
      "float lam_pos, float lam_neg) -> Tensor");
}

TORCH_LIBRARY_IMPL(mmdet_lossplug, CPU, m) {
  m.impl("dr_expectation", &dr_loss::forward_cpu_op);
  m.impl("dr_expectation_backward", &dr_loss::backward_cpu_op);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(mmdet_lossplug, CUDA, m) {
  m.impl("dr_expectation", &dr_loss::forward_cuda_op);
  m.impl("dr_expectation_backward", &dr_loss::backward_cuda_op);
}
#endif

// Importing mmdet_lossplug._ext registers the operators above.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("has_cuda", &dr_loss::has_cuda, "built with the CUDA kernels");
  m.attr("NUM_STATS") = static_cast<int>(dr_loss::kNumStats);
  m.attr("NUM_STATUS") = static_cast<int>(dr_loss::kNumStatus);
  m.attr("STATUS_NON_FINITE_LOGITS") =
      static_cast<int>(dr_loss::kNonFiniteLogits);
  m.attr("STATUS_BAD_LABELS") = static_cast<int>(dr_loss::kBadLabels);
  m.attr("STATUS_NAN_WEIGHTS") = static_cast<int>(dr_loss::kNanWeights);
  m.attr("STATUS_LABELS_AND_WEIGHTS_VALID") =
      static_cast<int>(dr_loss::kLabelsAndWeightsValid);
}
