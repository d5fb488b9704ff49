#!/usr/bin/env bash
# Runs mure's libFuzzer targets for a bounded time (scripts/test calls this).
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [SUMMARY_FILE]
#
# For each target (request, wire, program, tls): first replays every saved regression input
# (tests/fuzz/regressions/TARGET/), then fuzzes for SECONDS (default 60) from the committed seed corpus (tests/fuzz/corpus/TARGET/, real
# requests encoded by the BEAM: make_corpus.exs) plus what earlier runs in BUILD_DIR found,
# under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer, with
# -malloc_limit_mb and -rss_limit_mb. Any crash, sanitizer report, leak, over-limit
# allocation or timeout fails the run; the input that caused it is copied into
# tests/fuzz/regressions/TARGET/ so that every later run replays it (commit it).
# Appends "fuzzed N TARGET" lines (libFuzzer's executed units) to SUMMARY_FILE. A target that
# runs fewer than 20 inputs a second fails too: fuzzing that slow finds nothing.
# The targets run side by side in waves of MURE_FUZZ_JOBS (default: the number of cores), so
# each has a core for all of its SECONDS: the whole run takes ceil(targets / cores) * SECONDS.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR [SECONDS] [SUMMARY_FILE]}"
seconds="${2:-60}"
summary="${3:-/dev/null}"
min_execs="${MURE_FUZZ_MIN_EXECS:-$((seconds * 20))}"  # far below the ~500-3000/s these targets run at
targets=(request program wire tls)  # waves on 2 cores: the PoCL-threaded program beside the single-threaded request
jobs="${MURE_FUZZ_JOBS:-$(nproc)}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: MURE_FUZZ_JOBS: want a positive number, got '$jobs'" >&2; exit 2; }
limits=(-malloc_limit_mb=2048 -rss_limit_mb=2048 -timeout=30 -max_len=16384)

symbolizer="$(command -v llvm-symbolizer || ls /usr/lib/llvm-14/bin/llvm-symbolizer 2>/dev/null || true)"
[ -n "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH="$symbolizer"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/../lsan.supp}"

status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/mure_fuzz_$t"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing: configure with CC=clang CXX=clang++ -DMURE_FUZZ=ON and build mure_fuzz_$t" >&2
    exit 2
  fi
  mapfile -t saved < <(find "$here/regressions/$t" -type f ! -name '.gitkeep' 2>/dev/null | sort)
  if ((${#saved[@]})); then
    echo "fuzz: replaying ${#saved[@]} saved regression inputs of $t"
    if ! "$bin" "${limits[@]}" "${saved[@]}" >"$build/fuzz-$t-regressions.log" 2>&1; then
      echo "fuzz: a saved regression input of $t fails again:" >&2
      tail -40 "$build/fuzz-$t-regressions.log" >&2
      status=1
    fi
  else
    echo "fuzz: no saved regression inputs of $t"
  fi
done
((status == 0)) || exit $status

fuzz_target() {  # T: fuzzes T for SECONDS in the background; its pid in pid_of[T]
  local t=$1 work="$build/fuzz-corpus/$1" art="$build/fuzz-artifacts/$1"
  mkdir -p "$work" "$art"
  rm -f "$art"/*
  "$build/tests/fuzz/mure_fuzz_$t" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$art/" "$work" "$here/corpus/$t" >"$build/fuzz-$t.log" 2>&1 &
  pid_of[$t]=$!
}

check_target() {  # T: waits for T's run, reports it, keeps what it found; status=1 on a finding
  local t=$1 rc execs rate cov f
  wait "${pid_of[$t]}"
  rc=$?
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$build/fuzz-$t.log" | awk '{print $2}' | tail -1)"
  rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$build/fuzz-$t.log" | awk '{print $2}' | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$build/fuzz-$t.log" | tail -1 | awk '{print $2}')"
  if ((rc != 0)); then
    echo "fuzz: $t FAILED (exit $rc); log: $build/fuzz-$t.log" >&2
    grep -m1 -A30 -E 'ERROR: |runtime error|==[0-9]+==|fuzz: ' "$build/fuzz-$t.log" >&2 || tail -40 "$build/fuzz-$t.log" >&2
    mkdir -p "$here/regressions/$t"
    for f in "$build/fuzz-artifacts/$t"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$here/regressions/$t/"
      echo "fuzz: kept $(basename "$f") as a regression input in tests/fuzz/regressions/$t/ (commit it)" >&2
    done
    status=1
  elif ((${execs:-0} < min_execs)); then
    echo "fuzz: $t ran only ${execs:-0} inputs in $seconds s (less than $min_execs): the harness has become too slow to fuzz anything; log: $build/fuzz-$t.log" >&2
    status=1
  else
    echo "fuzz: $t: ${execs:-0} inputs in ${seconds} s (${rate:-0}/s), coverage ${cov:-?} edges, no findings"
  fi
  echo "fuzzed ${execs:-0} $t" >>"$summary"
}

declare -A pid_of=()
for ((w = 0; w < ${#targets[@]}; w += jobs)); do
  wave=("${targets[@]:w:jobs}")
  for t in "${wave[@]}"; do fuzz_target "$t"; done
  for t in "${wave[@]}"; do check_target "$t"; done
done
exit $status
