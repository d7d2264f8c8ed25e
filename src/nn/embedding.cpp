// Token embedding lookup and its gradient (a scatter-add).
#include <stdexcept>
#include <string>

#include "attnrank/core/parallel.h"
#include "attnrank/nn/layers.h"

namespace attnrank {

template <typename T>
void embedding_forward(const int32_t* tokens, const T* table, T* y, int rows, int vocabulary,
                       int width, int y_stride) {
  for (int row = 0; row < rows; ++row)
    if (tokens[row] < 0 || tokens[row] >= vocabulary)
      throw std::out_of_range("embedding: token id " + std::to_string(tokens[row]) +
                              " outside the vocabulary [0, " + std::to_string(vocabulary) + ")");
#pragma omp parallel for schedule(static) if (worth_parallel(static_cast <size_t>(rows) * width))
  for (int row = 0; row < rows; ++row) {
    const T* from = table + static_cast<size_t>(tokens[row]) * width;
    T* to = y + static_cast<size_t>(row) * y_stride;
    for (int i = 0; i < width; ++i) to[i] = from[i];
  }
}

template <typename T>
void embedding_backward(const int32_t* tokens, const T* dy, T* dtable, int rows, int width,
                        int dy_stride) {
  // Serial in row order: a few hundred thousand additions per step, and two rows
  // with the same token must be added in a fixed order for bit-identical results.
  for (int row = 0; row < rows; ++row) {
    const T* from = dy + static_cast<size_t>(row) * dy_stride;
    T* to = dtable + static_cast<size_t>(tokens[row]) * width;
    for (int i = 0; i < width; ++i) to[i] += from[i];
  }
}

template void embedding_forward<float>(const int32_t*, const float*, float*, int, int, int, int);
template void embedding_forward<double>(const int32_t*, const double*, double*, int, int, int, int);
template void embedding_backward<float>(const int32_t*, const float*, float*, int, int, int);
template void embedding_backward<double>(const int32_t*, const double*, double*, int, int, int);

}  // namespace attnrank
