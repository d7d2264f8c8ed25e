#!/usr/bin/env bash
# The live Slurm round trip (CTest Slurm.LiveRoundTrip, label slurm; ctest --preset slurm):
# starts a one-node Slurm (scripts/slurm-local, as root or through sudo), submits
# tests/data/slurm_sweep.yaml with `attnrank submit` as a 4-task array with a
# 2-minute limit, cuts one running task off with the signal Slurm sends before its
# time limit (scancel --batch --signal=USR1, as --signal=B:USR1@S does), waits for
# the requeued task and the merge job, and checks that the merged database holds
# every run exactly once with metrics bit-identical to the same sweep run locally
# without shards (same thread count), and that the run cut off resumed from the
# checkpoint it saved, not from step 0. Fails, with the daemons' logs, if Slurm does
# not come up. Usage: tests/slurm_live.sh ATTNRANK_BINARY [WORK_DIR]
set -euo pipefail
attnrank=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
spec=$root/tests/data/slurm_sweep.yaml
own_dir=0
[[ -z ${2:-} ]] && own_dir=1
work=${2:-$(mktemp -d /tmp/attnrank-slurm-live.XXXXXX)}
mkdir -p "$work"
work=$(realpath "$work")
chmod 755 "$work"  # munged wants the directories above its socket searchable by all
export SLURM_LOCAL_DIR=$work/slurm
export SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo --preserve-env=SLURM_LOCAL_DIR"
unset SLURM_ARRAY_TASK_ID SLURM_PROCID OMPI_COMM_WORLD_RANK PMI_RANK PMIX_RANK

say() { echo "== $(date -u +%T) $*"; }
failed() {
  echo "slurm_live: FAILED: $*" >&2
  for log in "$work"/out/logs/*.log; do
    [[ -f $log ]] && { echo "---- $log" >&2; tail -n 30 "$log" >&2; }
  done
  squeue >&2 || true
  exit 1
}
passed=0
cleanup() {
  $sudo "$root/scripts/slurm-local" stop >/dev/null || true
  # A directory of its own is removed after a pass, kept after a failure.
  if [[ $own_dir == 1 && $passed == 1 ]]; then rm -rf "$work"; else echo "slurm_live: files in $work"; fi
}
trap cleanup EXIT

say "starting Slurm in $SLURM_LOCAL_DIR"
$sudo "$root/scripts/slurm-local" start
sinfo

say "the reference: the same sweep, locally, one thread per run"
"$attnrank" sweep "$spec" --db "$work/local.db" --jobs 2 --threads 2 --quiet

say "attnrank submit"
"$attnrank" submit "$spec" --shards 4 --cpus 1 --time 2 --signal-before 75 \
  --out "$work/out" | tee "$work/submit.txt"
array=$(sed -n 's/.* array job \([0-9]*\) .*/\1/p' "$work/submit.txt")
merge=$(sed -n 's/.* merge job \([0-9]*\) .*/\1/p' "$work/submit.txt")
[[ $array =~ ^[0-9]+$ && $merge =~ ^[0-9]+$ ]] || failed "no job ids in the output of submit"

job_state() {  # STATE of job or array task $1 ("" once Slurm forgot it)
  scontrol show job "$1" 2>/dev/null | awk -F'JobState=' 'NF > 1 {split($2, a, " "); print a[1]; exit}'
}

# Cut one task off mid-run: wait until a task is running with a run under way (its
# train.log shows a step, no summary yet), then send what Slurm sends at
# --signal=B:USR1@S.
say "waiting for a task in the middle of a run"
cut="" cut_run=""
for _ in $(seq 1 480); do
  for task in 0 1 2 3; do
    [[ $(job_state "${array}_$task") == RUNNING ]] || continue
    for log in "$work"/out/shards/shard-"$task"-of-4.runs/*/train.log; do
      if [[ -f $log && ! -f $(dirname "$log")/summary.json ]] && grep -q '^\[[0-9]' "$log"; then
        cut=$task cut_run=$(dirname "$log")
        break 3
      fi
    done
  done
  sleep 0.25
done
[[ -n $cut ]] || failed "no array task was seen in the middle of a run"
say "cutting task ${array}_$cut off (USR1 to its batch script, as at its time limit)"
# scancel delivers the signal at once but may then retry for several seconds ("Job
# can not be altered now": the task is being requeued) and deliver it again (the
# script stops the sweep only once): it runs in the background while the task's log
# is watched.
# The task's own job id: Slurm 22.05 resolves ARRAY_TASK to the whole pending
# array as well, and signals its tasks as they start.
raw=$(scontrol show job "${array}_$cut" | sed -n 's/^JobId=\([0-9]*\) .*/\1/p')
[[ -n $raw ]] || failed "no job id for ${array}_$cut"
scancel --batch --signal=USR1 "$raw" 2>"$work/scancel.err" &
scancel_pid=$!
for _ in $(seq 1 120); do
  grep -q "stopped before the time limit" "$work/out/logs/shard-$cut.log" && break
  sleep 0.25
done
kill -KILL "$scancel_pid" 2>/dev/null || true  # it would go on delivering
wait "$scancel_pid" 2>/dev/null || true
grep -q "stopped before the time limit" "$work/out/logs/shard-$cut.log" ||
  failed "task $cut did not stop on USR1: $(cat "$work/scancel.err")"
# Slurm holds a requeued batch job back for about two minutes (BeginTime); the
# test lets it start at once.
for _ in $(seq 1 60); do
  [[ $(job_state "${array}_$cut") == PENDING ]] && break
  sleep 0.25
done
scontrol update JobId="${array}_$cut" StartTime=now || true

say "waiting for the array and the merge job"
for _ in $(seq 1 480); do
  state=$(job_state "$merge")
  [[ $state == COMPLETED || $state == FAILED || $state == CANCELLED* || $state == TIMEOUT ]] && break
  sleep 0.5
done
squeue
for task in 0 1 2 3; do
  echo "task ${array}_$task: $(job_state "${array}_$task"), $(scontrol show job "${array}_$task" | grep -o 'Restarts=[0-9]*')"
done
[[ $state == COMPLETED ]] || failed "the merge job ended $state"

say "checks"
cut_log=$work/out/logs/shard-$cut.log
grep -q "stopped before the time limit" "$cut_log" || failed "task $cut did not stop at the warning"
echo "requeues (task $cut, and any task that reached --signal-before on its own): $(cat "$work"/out/logs/shard-*.log | grep -c "requeueing")"
grep -q "requeueing ${array}_$cut" "$cut_log" || failed "task $cut was not requeued"
attempts=$(grep -c "^== .* task ${array}_$cut on .*, attempt" "$cut_log")
((attempts >= 2)) || failed "task $cut ran $attempts times; expected a second attempt after the requeue"
# The run that was cut off resumed from the checkpoint it wrote on SIGTERM, not
# from step 0 (train.log is rewritten by each attempt).
grep -q "^resuming .* at step [1-9][0-9]*/" "$cut_run/train.log" ||
  failed "run $(basename "$cut_run") did not resume from a checkpoint: $(head -n 3 "$cut_run/train.log")"
grep "^resuming" "$cut_run/train.log"
for task in 0 1 2 3; do
  grep -q "sweep exit status 0" "$work/out/logs/shard-$task.log" || failed "task $task did not end with status 0"
done
tail -n 1 "$work/out/logs/merge.log" | grep -q "all 8 runs are in" || failed "the merge job did not find all 8 runs"

merged=$work/out/results.db
sql() { sqlite3 -batch -noheader "$merged" "ATTACH '$work/local.db' AS local; $1"; }
[[ $(sql "SELECT COUNT(*), COUNT(DISTINCT id) FROM runs") == "8|8" ]] ||
  failed "the merged database holds $(sql "SELECT COUNT(*) FROM runs") rows, not 8 distinct runs"
[[ $(sql "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 8 ]] || failed "not every run is done"
[[ $(sql "SELECT COUNT(*) FROM runs r JOIN local.runs l USING (id)") == 8 ]] ||
  failed "the merged runs are not the local sweep's runs"
# Bit-identical: REAL columns compared with IS (exact, NULL-safe), curves row by row.
differing=$(sql "SELECT COUNT(*) FROM runs r JOIN local.runs l USING (id)
  WHERE r.test_mse IS NOT l.test_mse OR r.trivial_mse IS NOT l.trivial_mse
     OR r.final_train_loss IS NOT l.final_train_loss OR r.steps IS NOT l.steps
     OR r.final_metrics IS NOT l.final_metrics OR r.config_yaml IS NOT l.config_yaml
     OR r.threads IS NOT l.threads")
[[ $differing == 0 ]] || failed "$differing runs differ from the local sweep"
[[ $(sql "SELECT COUNT(*) FROM metrics") == $(sql "SELECT COUNT(*) FROM local.metrics") ]] ||
  failed "the metrics curves have different lengths"
differing=$(sql "SELECT COUNT(*) FROM metrics m JOIN local.metrics l USING (run_id, step)
  WHERE m.train_loss IS NOT l.train_loss OR m.lr IS NOT l.lr OR m.grad_norm IS NOT l.grad_norm")
[[ $differing == 0 ]] || failed "$differing metrics rows differ from the local sweep"
for summary in "$work"/local.runs/*/metrics.csv; do
  id=$(basename "$(dirname "$summary")")
  cmp -s "$summary" "$work"/out/shards/shard-*-of-4.runs/"$id"/metrics.csv ||
    failed "run $id: metrics.csv differs from the local run's"
done
passed=1
say "PASSED: 8 runs, each once, bit-identical to the local sweep; task $cut cut off, requeued, its run resumed from its checkpoint"
