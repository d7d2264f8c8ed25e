// Softmax cross-entropy with ignored rows (labels < 0), fused with its gradient.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnrank/core/parallel.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/nn/layers.h"

namespace attnrank {

namespace {

// Eight independent chains (element k in chain k % 8), combined in a fixed order:
// the same result on every machine, without one long chain of dependent adds.
constexpr int kChains = 8;

template <typename T>
T largest(const T* values, int count) {
  T top[kChains];
  for (int chain = 0; chain < kChains; ++chain) top[chain] = values[0];
  int k = 0;
  for (; k + kChains <= count; k += kChains)
    for (int chain = 0; chain < kChains; ++chain)
      top[chain] = std::max(top[chain], values[k + chain]);
  for (; k < count; ++k) top[0] = std::max(top[0], values[k]);
  return *std::max_element(top, top + kChains);
}

template <typename T>
double sum_in_double(const T* values, int count) {
  double sums[kChains] = {};
  int k = 0;
  for (; k + kChains <= count; k += kChains)
    for (int chain = 0; chain < kChains; ++chain)
      sums[chain] += static_cast<double>(values[k + chain]);
  for (; k < count; ++k) sums[0] += static_cast<double>(values[k]);
  double sum = 0.0;
  for (double chain_sum : sums) sum += chain_sum;
  return sum;
}

}  // namespace

template <typename T>
CrossEntropy cross_entropy(const T* logits, const int32_t* labels, int rows, int classes,
                           T* d_logits) {
  CrossEntropy result;
  for (int row = 0; row < rows; ++row) {
    if (labels[row] >= classes)
      throw std::out_of_range("cross_entropy: label " + std::to_string(labels[row]) +
                              " outside [0, " + std::to_string(classes) + ")");
    if (labels[row] >= 0) ++result.scored;
  }
  const double scale = result.scored > 0 ? 1.0 / static_cast<double>(result.scored) : 0.0;
  std::vector<double> row_loss(rows, 0.0);
  const kernels::KernelTable<T>& kernel = kernels::active<T>();
#pragma omp parallel if (worth_parallel(static_cast <size_t>(rows) * classes))
  {
    std::vector<T> scratch(d_logits == nullptr ? classes : 0);
#pragma omp for schedule(static)
    for (int row = 0; row < rows; ++row) {
      const T* z = logits + static_cast<size_t>(row) * classes;
      T* dz = d_logits != nullptr ? d_logits + static_cast<size_t>(row) * classes : nullptr;
      const int label = labels[row];
      if (label < 0) {
        if (dz != nullptr) std::fill(dz, dz + classes, T(0));
        continue;
      }
      // log-sum-exp around the largest logit: exp in T (vectorised for float), sums
      // in double.
      const T top = largest(z, classes);
      T* exps = dz != nullptr ? dz : scratch.data();  // exp once; normalised below
      kernel.exp_shifted(z, top, exps, classes);
      const double sum = sum_in_double(exps, classes);
      row_loss[row] = static_cast<double>(top) + std::log(sum) - static_cast<double>(z[label]);
      if (dz != nullptr) {
        const T factor = static_cast<T>(scale / sum);
        for (int k = 0; k < classes; ++k) dz[k] *= factor;
        dz[label] = static_cast<T>(static_cast<double>(dz[label]) - scale);
      }
    }
  }
  for (double loss : row_loss) result.total += loss;  // in row order: thread-independent
  return result;
}

template CrossEntropy cross_entropy<float>(const float*, const int32_t*, int, int, float*);
template CrossEntropy cross_entropy<double>(const double*, const int32_t*, int, int, double*);

}  // namespace attnrank
