#include "attnrank/train/build_info.h"

#include <fstream>
#include <string>

#include "attnrank/build_commit.h"
#include "attnrank/core/threading.h"
#include "attnrank/kernels/kernels.h"

extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);
extern "C" int openblas_get_num_threads(void);

namespace attnrank {

namespace {

std::string cpu_model() {
  std::ifstream file("/proc/cpuinfo");
  std::string line;
  // "model name" on x86-64; arm64 kernels give no name, only "CPU part".
  while (std::getline(file, line))
    for (const char* key : {"model name", "Model name", "Hardware"})
      if (line.rfind(key, 0) == 0) {
        const auto colon = line.find(':');
        if (colon != std::string::npos)
          return line.substr(line.find_first_not_of(" \t", colon + 1));
      }
  return "unknown";
}

}  // namespace

BuildInfo build_info() {
  BuildInfo info;
  info.version = ATTNRANK_VERSION;
  info.commit = ATTNRANK_GIT_COMMIT;
#if defined(__clang__)
  info.compiler = std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  info.compiler = std::string("GCC ") + __VERSION__;
#else
  info.compiler = "unknown";
#endif
  info.build = ATTNRANK_BUILD_DESCRIPTION;
  info.isa = kernels::active_isa();
  for (const auto& variant : kernels::built_variants())
    info.variants += (info.variants.empty() ? "" : ", ") + variant.isa +
                     (variant.runnable ? "" : " (not on this CPU)");
  info.cpu = cpu_model();
  info.blas = std::string(openblas_get_config()) + ", core " + openblas_get_corename();
  info.blas_threads = openblas_get_num_threads();
  info.threads = hardware_threads();
  return info;
}

std::string version_line() {
  const BuildInfo info = build_info();
  return "attnrank " + info.version + " (commit " + info.commit + ", " + info.compiler +
         ", kernels " + info.isa + ")";
}

std::vector<std::string> build_info_lines() {
  const BuildInfo info = build_info();
  return {"version: " + info.version,
          "commit: " + info.commit,
          "compiler: " + info.compiler,
          "build: " + info.build,
          "cpu: " + info.cpu,
          "kernels: " + info.isa,
          "kernel variants: " + info.variants,
          "blas: " + info.blas,
          "blas threads: " + std::to_string(info.blas_threads),
          "threads: " + std::to_string(info.threads)};
}

}  // namespace attnrank
