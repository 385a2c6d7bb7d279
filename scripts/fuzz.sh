#!/usr/bin/env bash
# Fuzzes the dump parser (crates/dump/fuzz, target `parse_dump`) for a bounded time; fails on a
# crash (a panic, an arithmetic overflow, a hang or runaway memory), leaving the input that
# caused it in crates/dump/fuzz/artifacts/parse_dump/. CI runs it after the tests.
#
#   scripts/fuzz.sh [SECONDS]      fuzz for SECONDS (default 60, or HEAPFLEET_FUZZ_SECONDS)
#
# Works from a clean clone: installs cargo-fuzz if it is missing, builds the target into the
# fuzz crate's own target directory (crates/dump/fuzz/target, about 35 s from scratch on 2
# cores) with the fuzz crate's own Cargo.lock, and seeds a fresh corpus from the committed bad
# dumps. The corpus it grows (crates/dump/fuzz/corpus/parse_dump) is kept between local runs
# and ignored by git. Reproduce a crash with
#   (cd crates/dump && RUSTC_BOOTSTRAP=1 cargo fuzz run parse_dump --sanitizer none ARTIFACT)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly CARGO_FUZZ_VERSION=0.13.2
readonly TARGET=parse_dump
readonly FUZZ_DIR=crates/dump/fuzz
seconds=${1:-${HEAPFLEET_FUZZ_SECONDS:-60}}

log() { echo "fuzz: $*" >&2; }

case $seconds in
  '' | *[!0-9]*) log "the fuzzing time must be a whole number of seconds, not '$seconds'"; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (once)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# The fuzz crate is its own workspace with its own lock file; like the workspace's `--locked`
# builds, a lock file that no longer matches the manifests is an error, not a silent update.
if ! cargo metadata --locked --format-version 1 --manifest-path "$FUZZ_DIR/Cargo.toml" \
  >/dev/null; then
  log "$FUZZ_DIR/Cargo.lock is out of date: run" \
    "'cargo update --workspace --manifest-path $FUZZ_DIR/Cargo.toml' and commit it"
  exit 1
fi

# libFuzzer's instrumentation needs rustc flags that stable rustc accepts only with
# RUSTC_BOOTSTRAP=1 (harmless on nightly). No sanitizer: the parser has no unsafe code
# (`unsafe_code = "forbid"`), so AddressSanitizer would find nothing, while it needs -Zsanitizer
# and would double the build. Debug assertions stay on (cargo-fuzz's default), so an overflow
# is a crash.
export RUSTC_BOOTSTRAP=1
fuzz_args=(--fuzz-dir "$FUZZ_DIR" --sanitizer none)

started=$(date +%s)
cargo fuzz build "${fuzz_args[@]}" "$TARGET"
log "built in $(( $(date +%s) - started )) s"

# Seeds, written afresh into a scratch directory libFuzzer only reads: the committed bad dumps
# and the head of a real dump, plain and gzip. New inputs go to the kept corpus.
seeds=$(mktemp -d -t heapfleet-fuzz-seeds.XXXXXX)
trap 'rm -rf "$seeds"' EXIT
cp tests/fixtures/dumps/bad/*.dump tests/fixtures/dumps/bad/*.dump.gz "$seeds/"
head -n 40 tests/fixtures/dumps/small/*.dump >"$seeds/small-head.dump"
gzip -n -c "$seeds/small-head.dump" >"$seeds/small-head.dump.gz"
corpus=$FUZZ_DIR/corpus/$TARGET
mkdir -p "$corpus"

log "fuzzing $TARGET for $seconds s"
started=$(date +%s)
# -timeout: one input running longer than 10 s is a hang (the parser is linear), so a crash.
if ! cargo fuzz run "${fuzz_args[@]}" "$TARGET" "$corpus" "$seeds" -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
  log "$TARGET crashed; the input is in $FUZZ_DIR/artifacts/$TARGET/:"
  ls -t "$FUZZ_DIR/artifacts/$TARGET/" 2>/dev/null | head -n 5 >&2 || true
  exit 1
fi
log "no crash in $(( $(date +%s) - started )) s of fuzzing"
