# frozen_string_literal: true
#
# heapy-oracle.rb - heapy 0.2.0's numbers for a Ruby heap dump, as JSON.
#
# heapfleet's tests use this as a reference: it prints what heapy
# (https://github.com/schneems/heapy, version 0.2.0) computes, in a
# machine-readable form instead of heapy's text report.
#
# Usage (from the repository root; needs Ruby and the heapy gem, e.g. the
# Debian package ruby-heapy):
#
#   ruby scripts/heapy-oracle.rb generations FILE [--mem]
#       {"none": 7375, "1": 388, ...}   object count per generation, exactly
#       as `heapy read FILE` counts them. With --mem:
#       {"generations": {"none": {"count": N, "memsize": M}, ...},
#        "total": {"generations_active": G, "count": N, "memsize": M},
#        "memsize_left_out": M}
#       where every memsize is the byte value behind heapy's "mem: X kb"
#       (heapy prints it divided by 1024, rounded to 0.1) and
#       memsize_left_out is what heapy drops (see "known heapy bugs").
#
#   ruby scripts/heapy-oracle.rb sites FILE GEN
#       [{"file": F, "line": L, "count": N, "memsize": M, "references": R}, ...]
#       the per-site table of `heapy read FILE GEN` ("allocated by memory",
#       "object count", "High Ref Counts"), not cut to 50 rows. GEN is an
#       integer or "all". heapy groups by the string "#{file}:#{line}" of the
#       objects whose generation matches and that have a "file". Sorted by
#       count desc, then memsize desc, then file:line. Prints [] where heapy
#       would raise "not a valid Generation". (heapy's "Duplicate strings"
#       table is not reproduced.)
#
#   ruby scripts/heapy-oracle.rb diff A B [C]
#       [{"type": T, "file": F, "line": L, "count": N, "memsize": M}, ...]
#       what `heapy diff A B [C]` reports: objects of B whose address is not
#       in A (and, with C, whose address is in C), grouped by type, file and
#       line. Sorted by count desc, then type, file, line.
#
#   ruby scripts/heapy-oracle.rb verify FILE [GEN ...]
#       runs the heapy command line (`heapy`, or $HEAPY) on FILE and checks
#       that its text output agrees with `generations --mem` and, for each GEN
#       (default: "all" and every generation with objects that have a file),
#       with `sites`. Prints a summary; exits 1 on a mismatch.
#
#   ruby scripts/heapy-oracle.rb verify-diff A B [C]
#       the same check for `heapy diff A B [C]`.
#
# FILE may be gzipped (*.gz): it is unpacked to a temporary file first (heapy
# itself reads only plain files).
#
# How it is computed:
#   - generations and sites REPLICATE the logic of Heapy::Analyzer#analyze and
#     Heapy::Analyzer#drill_down (lib/heapy/analyzer.rb in heapy 0.2.0), which
#     only print text. Lines are read and parsed by heapy's own
#     Heapy::Analyzer#read, so the same lines are skipped as unparsable.
#   - diff CALLS heapy's own Heapy::Diff#call (lib/heapy/diff.rb) and reads
#     its Heapy::Diff#diff table.
#   heapy prints "Could not parse <line>" on stdout for lines that are not
#   valid JSON; the oracle counts them and reports the count on stderr.
#
# Known heapy bugs and quirks (this oracle reproduces them on purpose):
#   - `parsed["generation"] || 0`: objects without a generation and objects
#     of generation 0 are one bucket, printed "nil" (here: "none"), and
#     `heapy read FILE 0` drills into that bucket.
#   - analyze: the memsize of that bucket is left out: heapy looks it up under
#     the key "nil" after relabelling, so it prints "mem: 0.0 kb" for it and
#     leaves it out of "Memory:" in the totals.
#   - drill_down skips objects without "file" and groups by the string
#     "file:line", so it counts only objects allocated while tracing was on.
#   - diff matches objects by address only. A slot freed after dump A and
#     re-used by a new object before dump B hides that object from the diff;
#     an object of B that died before C but whose slot was re-used by another
#     object by C is reported as "Retained". ROOT lines (no address) are
#     skipped because nil is "in" the other dumps too.
#   - ROOT lines are counted as objects of the "nil" generation.
#   - JSON.parse failures are printed and skipped; other errors abort heapy.
#     With no parsable line at all, `heapy read FILE` crashes (NoMethodError);
#     the oracle prints {} instead.

require "json"
require "stringio"
require "tempfile"
require "zlib"
require "open3"
require "heapy"

# heapy reads dumps as text in the default external encoding. Fix it to UTF-8
# (heapy under a UTF-8 locale) so that lines with non-ASCII bytes behave the
# same whatever the caller's locale; `verify` runs the heapy CLI likewise.
Encoding.default_external = Encoding::UTF_8
HEAPY_ENV = { "LC_ALL" => "C.UTF-8", "RUBYOPT" => "-EUTF-8" }.freeze

module HeapyOracle
  module_function

  # heapy reads plain files only: unpack *.gz to a temporary file.
  def plain_path(path)
    return yield(path) unless path.end_with?(".gz")

    Tempfile.create(["heapy-oracle", ".dump"]) do |tmp|
      tmp.binmode
      begin
        Zlib::GzipReader.open(path) { |gz| IO.copy_stream(gz, tmp) }
      rescue Zlib::Error => e
        abort("heapy-oracle: #{path}: #{e.message}")
      end
      tmp.close
      yield tmp.path
    end
  end

  # Run a block that calls heapy code; heapy writes "Could not parse" lines
  # to $stdout, which must not mix with our JSON.
  def quietly
    saved = $stdout
    $stdout = StringIO.new
    result = yield
    skipped = $stdout.string.each_line.count { |l| l.start_with?("Could not parse ") }
    warn "heapy-oracle: heapy skipped #{skipped} unparsable line(s)" if skipped.positive?
    result
  ensure
    $stdout = saved
  end

  # Mirrors Heapy::Analyzer#analyze.
  def generations(file)
    data = Hash.new(0)
    mem = Hash.new(0)
    plain_path(file) do |path|
      quietly do
        Heapy::Analyzer.new(path).read do |parsed|
          data[parsed["generation"] || 0] += 1
          mem[parsed["generation"] || 0] += parsed["memsize"] || 0
        end
      end
    end
    gens = {}
    total_count = 0
    total_mem = 0
    data.sort_by { |gen, _| gen }.each do |gen, count|
      label = gen.zero? ? "none" : gen.to_s
      reported_mem = gen.zero? ? 0 : mem[gen] # heapy reads mem["nil"] for bucket 0
      total_count += count
      total_mem += reported_mem
      gens[label] = { "count" => count, "memsize" => reported_mem }
    end
    {
      "generations" => gens,
      "total" => { "generations_active" => data.size, "count" => total_count, "memsize" => total_mem },
      "memsize_left_out" => mem[0]
    }
  end

  # Mirrors Heapy::Analyzer#drill_down (the three per-site tables).
  def sites(file, gen)
    gen = Integer(gen) unless gen == "all"
    rows = {}
    plain_path(file) do |path|
      quietly do
        Heapy::Analyzer.new(path).read do |parsed|
          generation = parsed["generation"] || 0
          next unless gen == "all" || generation == gen
          next unless parsed["file"]

          key = "#{parsed['file']}:#{parsed['line']}"
          row = rows[key] ||= { "file" => parsed["file"], "line" => parsed["line"], "count" => 0, "memsize" => 0, "references" => 0 }
          row["memsize"] += parsed["memsize"] || 0
          row["count"] += 1
          row["references"] += parsed["references"].length if parsed["references"]
        end
      end
    end
    rows.sort_by { |key, r| [-r["count"], -r["memsize"], key] }.map(&:last)
  end

  # Calls Heapy::Diff#call and returns its table.
  def diff(before, after, retained = nil)
    plain_path(before) do |a|
      plain_path(after) do |b|
        run = lambda do |c|
          d = Heapy::Diff.new(before: a, after: b, retained: c, io: StringIO.new)
          quietly { d.call }
          d.diff.values.map { |v| v.slice("type", "file", "line", "count", "memsize") }
        end
        table = retained ? plain_path(retained) { |c| run.call(c) } : run.call(nil)
        table.sort_by { |r| [-r["count"], r["type"].to_s, r["file"].to_s, r["line"].to_i] }
      end
    end
  end

  # ---- verification against the heapy command line -----------------------

  def heapy_cli(*args)
    out, err, status = Open3.capture3(HEAPY_ENV, ENV.fetch("HEAPY", "heapy"), *args)
    raise "heapy #{args.join(' ')} failed: #{err}" unless status.success?

    out.b # compare bytes: file names in a dump need not be valid UTF-8
  end

  def kb(bytes)
    (bytes.to_f / 1024).round(1)
  end

  def check(problems, what, expected, got)
    problems << "#{what}: oracle #{expected.inspect}, heapy #{got.inspect}" unless expected == got
  end

  # Parse "  12345  file:line" rows of one drill-down section.
  def section_rows(text, title)
    body = text.split(/^#{Regexp.escape(title)}.*\n=+\n/, 2)[1] or return {}
    rows = {}
    body.each_line do |l|
      break if l.strip.empty? && !rows.empty?
      next if l.strip.empty?

      m = l.match(/\A\s*(\d+)  (.*)\n?\z/) or break
      rows[m[2]] = m[1].to_i
    end
    rows
  end

  def verify(file, gens)
    problems = []
    plain_path(file) do |path|
      g = generations(path)
      if g["total"]["count"].zero?
        # heapy crashes (NoMethodError on nil) when no line parses
        _, err, status = Open3.capture3(HEAPY_ENV, ENV.fetch("HEAPY", "heapy"), "read", path)
        check(problems, "no objects: heapy fails", true, !status.success? && err.include?("NoMethodError"))
        puts "generations: no objects"
        return report(problems)
      end
      text = heapy_cli("read", path)
      cli = {}
      text.scan(/^Generation:\s+(\S+) object count: (\d+), mem: ([\d.]+) kb$/) do |gen, count, mem|
        cli[gen == "nil" ? "none" : gen] = [count.to_i, mem.to_f]
      end
      ours = g["generations"].transform_values { |v| [v["count"], kb(v["memsize"])] }
      check(problems, "generations", ours, cli)
      check(problems, "total count", g["total"]["count"], text[/^Count: (\d+)/, 1].to_i)
      check(problems, "total memory kb", kb(g["total"]["memsize"]), text[/^Memory: ([\d.]+) kb/, 1].to_f)
      puts "generations: #{ours.size} buckets, #{g['total']['count']} objects"

      if gens.empty?
        with_file = Hash.new(0)
        quietly { Heapy::Analyzer.new(path).read { |p| with_file[p["generation"] || 0] += 1 if p["file"] } }
        gens = ["all"] + with_file.keys.sort.map(&:to_s)
      end
      gens.each do |gen|
        rows = sites(path, gen)
        if rows.empty?
          _, err, status = Open3.capture3(HEAPY_ENV, ENV.fetch("HEAPY", "heapy"), "read", path, gen)
          check(problems, "gen #{gen} raises", true, !status.success? && err.include?("not a valid Generation"))
          next
        end
        out = heapy_cli("read", path, gen, "--lines", "100000000")
        by_key = rows.to_h { |r| ["#{r['file']}:#{r['line']}".b, r] }
        check(problems, "gen #{gen} memsize", by_key.transform_values { |r| r["memsize"] }, section_rows(out, "allocated by memory"))
        check(problems, "gen #{gen} count", by_key.transform_values { |r| r["count"] }, section_rows(out, "object count"))
        refs = by_key.transform_values { |r| r["references"] }.reject { |_, v| v.zero? }
        check(problems, "gen #{gen} references", refs, section_rows(out, "High Ref Counts").reject { |_, v| v.zero? })
        check(problems, "gen #{gen} total memsize", rows.sum { |r| r["memsize"] }, out[/allocated by memory \((\d+)\)/, 1].to_i)
        check(problems, "gen #{gen} total count", rows.sum { |r| r["count"] }, out[/object count \((\d+)\)/, 1].to_i)
      end
      shown = gens.size <= 12 ? gens.join(" ") : "#{gens.first(6).join(' ')} ... #{gens.last}"
      puts "sites: checked #{gens.size} generation(s): #{shown}"
    end
    report(problems)
  end

  def verify_diff(files)
    problems = []
    paths = []
    unpack = lambda do |rest, &blk|
      return blk.call if rest.empty?

      plain_path(rest.first) do |p|
        paths << p
        unpack.call(rest.drop(1), &blk)
      end
    end
    unpack.call(files) do
      ours = diff(*paths)
      out = heapy_cli("diff", *paths)
      cli = []
      out.scan(%r{^(?:Retained|Allocated) (\S+) (\d+) objects of size (\d+)/(\d+) \(in bytes\) at: (.*):(\d*)$}) do |type, count, mem, _total, f, line|
        cli << { "type" => type, "file" => f.empty? ? nil : f.force_encoding(Encoding::UTF_8), "line" => line.empty? ? nil : line.to_i, "count" => count.to_i, "memsize" => mem.to_i }
      end
      cli.sort_by! { |r| [-r["count"], r["type"].to_s, r["file"].to_s, r["line"].to_i] }
      check(problems, "diff rows", ours, cli)
      puts "diff: #{ours.size} rows, #{ours.sum { |r| r['count'] }} objects"
    end
    report(problems)
  end

  def report(problems)
    if problems.empty?
      puts "OK: oracle agrees with the heapy command line"
    else
      problems.each { |p| puts "MISMATCH #{p}" }
      exit 1
    end
  end
end

def usage
  abort(<<~USAGE)
    usage: ruby scripts/heapy-oracle.rb generations FILE [--mem]
           ruby scripts/heapy-oracle.rb sites FILE GEN
           ruby scripts/heapy-oracle.rb diff A B [C]
           ruby scripts/heapy-oracle.rb verify FILE [GEN ...]
           ruby scripts/heapy-oracle.rb verify-diff A B [C]
  USAGE
end

cmd, *args = ARGV
case cmd
when "generations"
  usage unless [1, 2].include?(args.size) && (args.size == 1 || args[1] == "--mem")
  g = HeapyOracle.generations(args[0])
  out = args[1] == "--mem" ? g : g["generations"].transform_values { |v| v["count"] }
  puts JSON.pretty_generate(out)
when "sites"
  usage unless args.size == 2
  puts JSON.pretty_generate(HeapyOracle.sites(args[0], args[1]))
when "diff"
  usage unless [2, 3].include?(args.size)
  puts JSON.pretty_generate(HeapyOracle.diff(*args))
when "verify"
  usage if args.empty?
  HeapyOracle.verify(args[0], args.drop(1))
when "verify-diff"
  usage unless [2, 3].include?(args.size)
  HeapyOracle.verify_diff(args)
else
  usage
end
