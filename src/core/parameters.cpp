#include "attnrank/core/parameters.h"

#include <stdexcept>

namespace attnrank {

size_t ParameterLayout::add(const std::string& name, std::vector<int64_t> shape, bool attention,
                            bool decay, TensorInit init) {
  size_t size = 1;
  for (int64_t dim : shape) size *= static_cast<size_t>(dim);
  TensorInfo info{name, std::move(shape), total_, size, attention, decay, init};
  tensors_.push_back(std::move(info));
  total_ += size;
  return tensors_.back().offset;
}

size_t ParameterLayout::attention_total() const {
  size_t total = 0;
  for (const auto& tensor : tensors_)
    if (tensor.attention) total += tensor.size;
  return total;
}

const TensorInfo& ParameterLayout::find(const std::string& name) const {
  for (const auto& tensor : tensors_)
    if (tensor.name == name) return tensor;
  throw std::out_of_range("no parameter named '" + name + "'");
}

bool ParameterLayout::contains(const std::string& name) const {
  for (const auto& tensor : tensors_)
    if (tensor.name == name) return true;
  return false;
}

}  // namespace attnrank
