#!/usr/bin/env bash
# ctest -R EmulatedCpu: runs the release build (not -march=native) on a CPU model that lacks this
# machine's instruction sets (qemu-user's -cpu), so an instruction the model does
# not have (an AVX-512 one on Haswell, an AVX2 one on qemu64) dies with SIGILL
# even on an AVX-512 host. Checks that the dispatcher picks the expected variant,
# that a training run works through the binary and records it, and runs the given
# test programs.
#   run_on_emulated_cpu.sh QEMU CPU EXPECTED_ISA ATTNRANK CONFIG TEST_PROGRAM...
set -euo pipefail
qemu=$1 cpu=$2 expected=$3 binary=$4 config=$5
shift 5
run() { "$qemu" -cpu "$cpu" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }
info=$(run "$binary" info)
grep -qx "kernels: $expected" <<<"$info" || { echo "expected kernels: $expected, got:"; echo "$info"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The test programs write fixed names under the temporary directory: a directory
# of this run's own keeps them apart from the same programs run natively (or on
# the other CPU model) at the same time.
export TMPDIR=$out
run "$binary" train --config "$config" train.threads=1 --quiet --out "$out/run"
grep -q "\"kernel_isa\": \"$expected\"" "$out/run/summary.json" || { cat "$out/run/summary.json"; exit 1; }
for program in "$@"; do
  run "$program" --gtest_brief=1
done
echo "$cpu: kernels $expected, training and $# test programs passed"
