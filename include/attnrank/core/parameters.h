// Named tensors inside one contiguous arena. The same layout indexes parameter
// values, gradients and optimizer moments.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnrank {

// How a tensor starts: declared with the tensor, so the layout that names a
// parameter also says how it is drawn (Transformer::initialize applies it).
struct TensorInit {
  enum class Kind { kZeros, kOnes, kUniform, kNormal };
  Kind kind = Kind::kZeros;
  double scale = 0.0;  // kUniform: U(-scale, scale); kNormal: N(0, scale^2)

  static TensorInit zeros() { return {Kind::kZeros, 0.0}; }
  static TensorInit ones() { return {Kind::kOnes, 0.0}; }
  static TensorInit uniform(double bound) { return {Kind::kUniform, bound}; }
  static TensorInit normal(double std_dev) { return {Kind::kNormal, std_dev}; }
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;       // in elements
  size_t size = 0;         // in elements
  bool attention = false;  // counts towards attention_parameters
  bool decay = true;       // weight decay applies (matrices); false for norms, biases
  TensorInit init;         // how Transformer::initialize draws it
};

class ParameterLayout {
 public:
  // Appends a tensor and returns its offset in the arena.
  size_t add(const std::string& name, std::vector<int64_t> shape, bool attention, bool decay,
             TensorInit init = TensorInit::zeros());
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t total() const { return total_; }
  size_t attention_total() const;
  // Throws std::out_of_range naming the tensor if absent.
  const TensorInfo& find(const std::string& name) const;
  bool contains(const std::string& name) const;

 private:
  std::vector<TensorInfo> tensors_;
  size_t total_ = 0;
};

}  // namespace attnrank
