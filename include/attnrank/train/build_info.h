// What a user pastes into a bug report: version, commit, compiler, the kernels'
// instruction set, the BLAS library and the threads (`attnrank info`).
#pragma once
#include <string>
#include <vector>

namespace attnrank {

struct BuildInfo {
  std::string version;   // "0.1.0"
  std::string commit;    // short git hash, "-dirty" with uncommitted changes
  std::string compiler;  // "GCC 12.2.0"
  std::string build;     // "Release, generic" / "Release, -march=native" / ...
  std::string isa;       // the kernels' active variant: "avx512", "avx2", "sse2", "neon"
  std::string variants;  // every variant built in, with the ones this CPU cannot run marked
  std::string cpu;       // model name
  std::string blas;      // OpenBLAS's configuration string and its kernel core
  int blas_threads = 0;  // OpenBLAS's thread count now
  int threads = 0;       // threads attnrank uses when train.threads is 0
};

BuildInfo build_info();
// "attnrank 0.1.0 (commit ..., GCC ..., kernels avx2)"
std::string version_line();
// One "key: value" line per field of build_info().
std::vector<std::string> build_info_lines();

}  // namespace attnrank
