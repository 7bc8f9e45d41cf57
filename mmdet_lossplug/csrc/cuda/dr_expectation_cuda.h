// Launchers of the CUDA kernels: raw pointers and a stream only, so the
// kernel file compiles with plain nvcc (the CPU build of PyTorch ships no
// CUDA headers); PyTorch types stay in the binding.
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace dr_loss {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// Bytes of scratch the forward needs (each chunk's partial sums and
// counts).
size_t forward_workspace_bytes_cuda(DType dtype, int64_t batch, int64_t anchors,
                                    int64_t classes);

// logits (B, A, C) contiguous; labels (B, A) int64; weights (B, A) float32
// or null; stats (B, kNumStats), e_neg and e_pos (B,) in float64 for
// kFloat64, else float32; status (kNumStatus,) int64. Every element of the
// outputs is written (nothing needs zeroing first), by two kernels.
// B <= 65535 (the grid's y).
cudaError_t forward_cuda(DType dtype, const void* logits, const int64_t* labels,
                         const float* weights, int64_t batch, int64_t anchors,
                         int64_t classes, double lam_pos, double lam_neg,
                         void* workspace, void* stats, void* e_neg, void* e_pos,
                         int64_t* status, cudaStream_t stream);

// g_neg, g_pos (B,) and stats in the accumulation type; grad like logits
// (one kernel; 16-byte packs where grad and logits are equally aligned).
cudaError_t backward_cuda(DType dtype, const void* logits,
                          const int64_t* labels, const float* weights,
                          const void* stats, const void* g_neg,
                          const void* g_pos, int64_t batch, int64_t anchors,
                          int64_t classes, double lam_pos, double lam_neg,
                          void* grad, cudaStream_t stream);

}  // namespace dr_loss
