#!/usr/bin/env bash
#
# make-bad-dumps.sh - build the corpus of bad heap dumps in
# tests/fixtures/dumps/bad/ from lines of the real "small" fixture dump.
#
# Usage (from anywhere):
#
#   bash scripts/make-bad-dumps.sh [OUTDIR] [FILE...]
#
#   OUTDIR  where to write (default: tests/fixtures/dumps/bad)
#   FILE    which files to write (default: the committed ones):
#             invalid-lines.dump truncated.dump truncated.dump.gz empty.dump
#             binary.dump huge-line.dump
#           huge-line.dump (about 5.4 MB) is not committed; it is written
#           only when named, e.g. by a test:
#             bash scripts/make-bad-dumps.sh "$tmpdir" huge-line.dump
#
# Needs only bash and coreutils/gzip. The output is deterministic for a given
# tests/fixtures/dumps/small/heap-*.dump, and the bad line numbers listed in
# tests/fixtures/dumps/bad/EXPECTED.md do not depend on that dump's content.

set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
outdir="${1:-$root/tests/fixtures/dumps/bad}"
shift || true
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(invalid-lines.dump truncated.dump truncated.dump.gz empty.dump binary.dump)
fi

small=("$root"/tests/fixtures/dumps/small/heap-*.dump)
if [ ${#small[@]} -ne 1 ] || [ ! -f "${small[0]}" ]; then
  echo "expected exactly one tests/fixtures/dumps/small/heap-*.dump" >&2
  exit 1
fi
small="${small[0]}"
mkdir -p "$outdir"

# First line of the small dump that matches an extended regexp and is short.
pick() {
  local line
  line="$(grep -a -E -m 1 -e "$1" <(awk 'length($0) < 700' "$small"))" || {
    echo "no line matching $1" >&2
    exit 1
  }
  printf '%s' "$line"
}

# invalid-lines.dump: 20 lines, bad ones at 4 7 9 12 14 16 18 (see EXPECTED.md)
make_invalid_lines() {
  local class_line str_file_line obj_line method_line data_line
  class_line="$(pick '"type":"CLASS".*"name":"Shop::Cart"')"
  str_file_line="$(pick '"type":"STRING".*"value":"checkout".*"file":')"
  obj_line="$(pick '"type":"OBJECT".*"ivars":3.*"file":')"
  method_line="$(pick '"type":"OBJECT".*"ivars":7.*"method":"new"')"
  data_line="$(pick '"type":"DATA".*"struct":"mutex".*"file":')"
  {
    pick '"type":"STRING".*"value":"duplicate-me"'; echo                      # 1
    pick '"type":"ARRAY".*"file":'; echo                                        # 2
    pick '"type":"HASH".*"file":'; echo                                         # 3
    sed 's/"name":"Shop::Cart"/"name":"Shop::"Cart"/' <<<"$class_line"                # 4 bad
    pick '"type":"FLOAT"'; echo                                                 # 5
    pick '"type":"SYMBOL"'; echo                                                # 6
    sed -E 's#"file":"[^"]*"#"file":"app/views/we"ird.rb"#' <<<"$str_file_line"   # 7 bad
    pick '"type":"DATA".*"struct":"proc"'; echo                                 # 8
    sed -E 's#"file":"[^"]*"#"file":"C:\\app\\models\\user.rb"#' <<<"$obj_line"      # 9 bad
    pick '"type":"STRUCT"'; echo                                                # 10
    pick '"type":"IMEMO"'; echo                                                 # 11
    sed 's/"method":"new"/"method":"ne\x00w"/' <<<"$method_line"                  # 12 bad
    pick '"type":"FILE"'; echo                                                  # 13
    sed -E 's#"file":"[^"]*"#"file":"app/models/caf\xe9_\xff\xfe.rb"#' <<<"$data_line" # 14 bad
    pick '"type":"REGEXP"'; echo                                                # 15
    printf '\x8b\x1f\x00\xff{"address":\x07\x9c\xfe\xc0\xaf]}\x01\x02\x03\xee\x80\r\x1b[0m\x00\xf5\xa3garbage\x7f\n' # 16 bad
    pick '"type":"MODULE"'; echo                                                # 17
    echo                                                                        # 18 bad (blank)
    pick '"type":"BIGNUM"'; echo                                                # 19
    pick '"type":"STRING".*"value":"frozen literal copy"'; echo                 # 20
  } >"$outdir/invalid-lines.dump"
}

# truncated.dump: lines 1..29 of the small dump, then half of line 30 and no
# trailing newline.
make_truncated() {
  local last
  head -n 29 "$small" >"$outdir/truncated.dump"
  last="$(sed -n '30p' "$small")"
  printf '%s' "${last:0:$((${#last} / 2))}" >>"$outdir/truncated.dump"
}

# truncated.dump.gz: gzip -9 of lines 1..400 of the small dump, cut after 40 %
# of its bytes (no trailer, stream ends inside a deflate block).
make_truncated_gz() {
  local tmp size
  tmp="$(mktemp)"
  head -n 400 "$small" | gzip -9 -n >"$tmp"
  size="$(wc -c <"$tmp")"
  head -c $((size * 40 / 100)) "$tmp" >"$outdir/truncated.dump.gz"
  rm -f "$tmp"
}

make_empty() {
  : >"$outdir/empty.dump"
}

# binary.dump: 4096 pseudo-random bytes (a SHA-256 chain, so it is the same
# on every machine).
make_binary() {
  local i hex
  : >"$outdir/binary.dump"
  for i in $(seq 1 128); do
    hex="$(printf 'heapfleet-binary-%d' "$i" | sha256sum | cut -c1-64)"
    printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")" >>"$outdir/binary.dump"
  done
}

# huge-line.dump: the whole small dump, with the 480-byte "long-string-..."
# STRING grown to 3,300,000 bytes (bytesize and memsize adjusted to match).
make_huge_line() {
  local n line
  n="$(grep -a -n -m 1 '"bytesize":480, "value":"long-string-long' "$small" | cut -d: -f1)"
  line="$(sed -n "${n}p" "$small" | sed -E \
    -e 's/"bytesize":480, "value":"[^"]*"/"bytesize":3300000, "value":"@@VALUE@@"/' \
    -e 's/"memsize":[0-9]+/"memsize":3300041/')"
  {
    head -n $((n - 1)) "$small"
    printf '%s' "${line%%@@VALUE@@*}"
    { yes long-string- || true; } | head -n 275000 | tr -d '\n'
    printf '%s\n' "${line#*@@VALUE@@}"
    tail -n +$((n + 1)) "$small"
  } >"$outdir/huge-line.dump"
  echo "huge-line.dump: line $n has a 3300000-byte value"
}

for f in "${files[@]}"; do
  case "$f" in
    invalid-lines.dump) make_invalid_lines ;;
    truncated.dump) make_truncated ;;
    truncated.dump.gz) make_truncated_gz ;;
    empty.dump) make_empty ;;
    binary.dump) make_binary ;;
    huge-line.dump) make_huge_line ;;
    *) echo "unknown file $f" >&2; exit 1 ;;
  esac
  echo "wrote $outdir/$f ($(wc -c <"$outdir/$f") bytes)"
done
