// Picks the kernel variant once: the best one this CPU runs, or the one that
// ATTNRANK_ISA names (to compare variants on one machine, or to rule one out).
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "attnrank/core/error.h"
#include "attnrank/kernels/kernels.h"

// The variants CMake compiled into this library (ATTNRANK_KERNEL_<ISA> defined).
#define ATTNRANK_DECLARE_VARIANT(name) \
  namespace attnrank::kernels::name {  \
  template <typename T>                \
  const KernelTable<T>& table();       \
  }
#ifdef ATTNRANK_KERNEL_AVX512
ATTNRANK_DECLARE_VARIANT(avx512)
#endif
#ifdef ATTNRANK_KERNEL_AVX2
ATTNRANK_DECLARE_VARIANT(avx2)
#endif
#ifdef ATTNRANK_KERNEL_SSE2
ATTNRANK_DECLARE_VARIANT(sse2)
#endif
#ifdef ATTNRANK_KERNEL_NEON
ATTNRANK_DECLARE_VARIANT(neon)
#endif
#ifdef ATTNRANK_KERNEL_PORTABLE
ATTNRANK_DECLARE_VARIANT(portable)
#endif

namespace attnrank::kernels {

namespace {

template <typename T>
struct Variant {
  const KernelTable<T>* table;
  bool runnable;
};

#if defined(__x86_64__) || defined(__i386__)
// x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE and the v2 features beneath.
bool cpu_has_x86_64_v3() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("sse4.2") &&
         __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
         __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") &&
         __builtin_cpu_supports("abm") && __builtin_cpu_supports("movbe");
}

// x86-64-v4: v3 plus AVX-512 F, BW, CD, DQ and VL (libgcc also checks that the OS
// saves the zmm state).
bool cpu_has_x86_64_v4() {
  return cpu_has_x86_64_v3() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
#endif

// Best first.
template <typename T>
std::vector<Variant<T>> all_variants() {
  std::vector<Variant<T>> variants;
#ifdef ATTNRANK_KERNEL_AVX512
  variants.push_back({&avx512::table<T>(), cpu_has_x86_64_v4()});
#endif
#ifdef ATTNRANK_KERNEL_AVX2
  variants.push_back({&avx2::table<T>(), cpu_has_x86_64_v3()});
#endif
#ifdef ATTNRANK_KERNEL_SSE2
  variants.push_back({&sse2::table<T>(), true});  // the x86-64 baseline
#endif
#ifdef ATTNRANK_KERNEL_NEON
  variants.push_back({&neon::table<T>(), true});  // the arm64 baseline
#endif
#ifdef ATTNRANK_KERNEL_PORTABLE
  variants.push_back({&portable::table<T>(), true});
#endif
  return variants;
}

std::string variant_names() {
  std::string names;
  for (const auto& variant : all_variants<float>())
    names += (names.empty() ? "" : ", ") + std::string(variant.table->isa);
  return names;
}

template <typename T>
const KernelTable<T>& choose() {
  const char* requested = std::getenv("ATTNRANK_ISA");
  const auto variants = all_variants<T>();
  if (requested == nullptr || *requested == '\0') {
    for (const auto& variant : variants)
      if (variant.runnable) return *variant.table;
  } else {
    for (const auto& variant : variants) {
      if (requested != std::string(variant.table->isa)) continue;
      if (!variant.runnable)
        throw ConfigError("ATTNRANK_ISA=" + std::string(requested) +
                          ": this CPU cannot run that instruction set");
      return *variant.table;
    }
    throw ConfigError("ATTNRANK_ISA=" + std::string(requested) +
                      ": not a kernel variant of this build (built: " + variant_names() + ")");
  }
  throw std::logic_error("no kernel variant runs on this CPU");  // the baseline always does
}

}  // namespace

template <typename T>
const KernelTable<T>& active() {
  static const KernelTable<T>& chosen = choose<T>();
  return chosen;
}

std::string active_isa() {
  return active<float>().isa;
}

template <typename T>
std::vector<const KernelTable<T>*> runnable_variants() {
  std::vector<const KernelTable<T>*> tables;
  for (const auto& variant : all_variants<T>())
    if (variant.runnable) tables.push_back(variant.table);
  return tables;
}

std::vector<VariantInfo> built_variants() {
  std::vector<VariantInfo> info;
  for (const auto& variant : all_variants<float>())
    info.push_back({variant.table->isa, variant.runnable});
  return info;
}

template const KernelTable<float>& active<float>();
template const KernelTable<double>& active<double>();
template std::vector<const KernelTable<float>*> runnable_variants<float>();
template std::vector<const KernelTable<double>*> runnable_variants<double>();

}  // namespace attnrank::kernels
