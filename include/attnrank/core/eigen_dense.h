// Eigen's dense module. GCC 12 with -march=native (AVX-512) reports a false
// -Wmaybe-uninitialized inside its own intrinsic headers (the `__Y = __Y` idiom of
// avx512fintrin.h) when Eigen's reductions are inlined; the warning is reported where the
// code is inlined, so it is silenced for the including file rather than around the include.
#pragma once
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
