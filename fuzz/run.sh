#!/usr/bin/env bash
# Runs Tortie's fuzz targets one after another (docs/fuzzing.md): each
# from its committed seeds (fuzz/seeds/<target>) and kept crash inputs
# (fuzz/regressions/<target>) plus its working corpus
# (fuzz/corpus/<target>, not committed), with its dictionary, the memory
# and time limits, crashes (and the last run's log) kept in
# fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [-t SECONDS | -n RUNS] [-s SANITIZER] [-d] [-b] [TARGET...]
#
#   -t SECONDS   each target runs this long (default 30)
#   -n RUNS      each target runs this many inputs instead
#   -s SANITIZER address (cargo fuzz's default), none, ...
#   -d           a development build (no optimisation): builds in a
#                third of the time, runs several times slower (CI)
#   -b           build only, run nothing (CI builds while the tests run)
#   TARGET...    default: every target
#
# FUZZ_TARGET_DIR: the cargo target directory (default
# fuzz/target/<sanitizer>-<release|debug>).
#
# Builds once (cargo fuzz build), then runs the binaries directly, so
# that a source edit during a long run rebuilds nothing. Stops at the
# first target that crashes, times out or runs out of memory (exit 1),
# after printing its libFuzzer output. Needs nightly and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")"

time_s=30
runs=""
sanitizer=address
profile=(-O -a)
build_only=""
while getopts "t:n:s:db" opt; do
  case $opt in
    t) time_s=$OPTARG ;;
    n) runs=$OPTARG ;;
    s) sanitizer=$OPTARG ;;
    d) profile=(--dev) ;;
    b) build_only=1 ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(bgp_message bgp_session cni_request resources_yaml)
fi

kind=release
[ "${profile[0]}" = --dev ] && kind=debug
dir=${FUZZ_TARGET_DIR:-target/$sanitizer-$kind}
build=(cargo +nightly fuzz build "${profile[@]}" -s "$sanitizer" --target-dir "$dir")
if [ ${#targets[@]} -eq 4 ]; then
  "${build[@]}"
else
  for t in "${targets[@]}"; do "${build[@]}" "$t"; done
fi
bin=$dir/x86_64-unknown-linux-gnu/$kind
[ -n "$build_only" ] && exit 0

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  args=("corpus/$t" "seeds/$t")
  [ -d "regressions/$t" ] && args+=("regressions/$t")
  args+=(-rss_limit_mb=512 -timeout=10 -print_final_stats=1 "-artifact_prefix=artifacts/$t/")
  [ -f "dict/$t.dict" ] && args+=("-dict=dict/$t.dict")
  if [ -n "$runs" ]; then args+=("-runs=$runs"); else args+=("-max_total_time=$time_s"); fi
  log=artifacts/$t/last-run.log
  start=$(date +%s)
  if ! "$bin/$t" "${args[@]}" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/ (see docs/fuzzing.md)"
    exit 1
  fi
  stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" \
    | sed 's/^stat:://; s/: */=/' | tr '\n' ' ')
  echo "fuzz: $t ok in $(( $(date +%s) - start )) s: $stats corpus=$(ls "corpus/$t" | wc -l)"
done
