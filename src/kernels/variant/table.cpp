// This variant's kernel table, read by the dispatcher (src/kernels/dispatch.cpp).
#include "variant_kernels.h"

namespace attnrank::kernels::ATTNRANK_VARIANT {

#define ATTNRANK_STRINGIFY_NAME(name) #name
#define ATTNRANK_STRINGIFY(name) ATTNRANK_STRINGIFY_NAME(name)

template <typename T>
const KernelTable<T>& table() {
  static constexpr KernelTable<T> kTable = {
      ATTNRANK_STRINGIFY(ATTNRANK_VARIANT),
      kLanes<T>,
      &head_scratch_size<T>,
      &heads_in_lanes<T>,
      &heads_forward<T>,
      &heads_backward<T>,
      &exp_shifted<T>,
      &sphere_norm_forward<T>,
      &sphere_norm_backward<T>,
      &layer_norm_forward<T>,
      &layer_norm_backward<T>,
      &layer_norm_parameter_gradients<T>,
      &add_column_sums<T>,
      &packed_size<T>,
      &pack_panels<T>,
      &packed_gemm<T>,
      &packed_gemm_at<T>,
      &bias_relu<T>,
      &relu_backward<T>,
      &adamw_update<T>,
  };
  return kTable;
}

template const KernelTable<float>& table<float>();
template const KernelTable<double>& table<double>();

}  // namespace attnrank::kernels::ATTNRANK_VARIANT
