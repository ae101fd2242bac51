#!/bin/sh
# Coverage-guided fuzzing of kjump's parsers with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh run SECONDS [TARGET...]   fuzz each target for SECONDS
#   scripts/fuzz.sh seeds                     rewrite the seed corpus
#   scripts/fuzz.sh install                   install cargo-fuzz if missing
#
# Runs on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z flags (sanitizer, coverage) to rustc. Builds for the host's gnu triple,
# not the musl target that .cargo/config.toml sets for kjump itself. Every
# target is built in release mode with debug assertions (so an arithmetic
# overflow is a crash) and AddressSanitizer, whose allocator lets libFuzzer
# fail any single allocation over -malloc_limit_mb, not only a high RSS.
#
# A run reads the committed seeds in fuzz/corpus/TARGET and adds what it
# finds to fuzz/corpus-work/TARGET (not committed). A crash, a hang longer
# than FUZZ_TIMEOUT seconds or an allocation over the limits stops the run,
# leaves the input in fuzz/artifacts/TARGET/ and fails the script.
set -eu
cd "$(dirname "$0")/.."

HOST=x86_64-unknown-linux-gnu
TARGETS="image cmdline bzimage vmcoreinfo iomem text blobs keyblock"
# Per-input time limit (s), and memory limits (MiB): kjump's readers need a
# few MiB at most; anything near these is an unchecked length.
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-1024}
FUZZ_MALLOC_MB=${FUZZ_MALLOC_MB:-256}
export RUSTC_BOOTSTRAP=1

install() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    nice cargo install cargo-fuzz --locked >&2
  fi
}

run() {
  seconds=$1
  shift
  [ $# -gt 0 ] || set -- $TARGETS
  install
  # One build of every target first, so that the time limits are fuzzing time.
  nice cargo fuzz build --debug-assertions --target "$HOST" >&2
  passed=0
  failed=""
  for t in "$@"; do
    mkdir -p "fuzz/corpus-work/$t" "fuzz/corpus/$t"
    echo "fuzz: $t for ${seconds}s" >&2
    if nice cargo fuzz run --debug-assertions --target "$HOST" "$t" \
        "fuzz/corpus-work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -malloc_limit_mb="$FUZZ_MALLOC_MB" \
        -print_final_stats=1 >"fuzz/corpus-work/$t.log" 2>&1; then
      passed=$((passed + 1))
      grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "fuzz/corpus-work/$t.log" | tr '\n' ' ' >&2 || true
      echo >&2
    else
      failed="$failed $t"
      grep -E -A3 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|^SUMMARY|Test unit written' "fuzz/corpus-work/$t.log" | cut -c1-300 | head -n 30 >&2 || true
      echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/, the log in fuzz/corpus-work/$t.log" >&2
    fi
  done
  nfailed=$(echo $failed | wc -w)
  echo "fuzz: $passed passed, $nfailed failed"
  [ -z "$failed" ]
}

seeds() {
  nice cargo run --quiet --manifest-path fuzz/Cargo.toml --target "$HOST" --example seeds
  du -sh fuzz/corpus >&2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  run) run "$@" ;;
  seeds) seeds ;;
  install) install ;;
  *) echo "usage: $0 run SECONDS [TARGET...] | seeds | install" >&2; exit 2 ;;
esac
