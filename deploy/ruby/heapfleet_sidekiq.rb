# frozen_string_literal: true

# heapfleet for Sidekiq: writes a heap dump every N jobs for `heapfleet agent` to upload.
#
# Copy this file into your app and require it where Sidekiq loads your code (for example
# config/initializers/heapfleet.rb with `require_relative "heapfleet_sidekiq"`). It registers
# itself as a Sidekiq server middleware; nothing changes in the client (enqueuing) processes.
#
# Settings (environment):
#   HEAPFLEET_DUMP_DIR    where dumps go (default: tmp/heapfleet); `heapfleet agent --watch` it
#   HEAPFLEET_DUMP_EVERY  jobs between two dumps, per process (default: 100); 0 turns dumps off
#   HEAPFLEET_TRACE       "0" to leave allocation tracing off (default: on; dumps then carry
#                         allocation sites and generations, which the leak report needs)
#   HEAPFLEET_METADATA    "0" to skip the metadata sidecar (default: on)
#   HEAPFLEET_APP_VERSION app version for the sidecar (default: $APP_VERSION, $GIT_SHA, unset)
#
# Each dump is written as heap-<pid>-<unix_ts>-<jobs>.dump.tmp, its sidecar
# heap-<pid>-<unix_ts>-<jobs>.dump.json is written (also via a temporary name) and renamed first,
# and the dump is renamed to its final name last: the agent only picks up final names, so it
# never sees half a dump and always finds the sidecar next to it.
#
# Cost: a dump stops the process for GC.start plus the dump itself (about a second per few
# hundred MB of heap); allocation tracing slows allocation-heavy code (typically 10-30%).
# Pick HEAPFLEET_DUMP_EVERY so a process dumps a few times an hour.

require "json"
require "fileutils"
require "objspace"

module Heapfleet
  # Shared by the Sidekiq and the Rack variants: counts work units and dumps every N of them.
  class Dumper
    attr_reader :dir, :every

    def initialize(dir: ENV.fetch("HEAPFLEET_DUMP_DIR", "tmp/heapfleet"),
                   every: Integer(ENV.fetch("HEAPFLEET_DUMP_EVERY", "100")),
                   metadata: ENV.fetch("HEAPFLEET_METADATA", "1") != "0",
                   extra: {})
      @dir = dir
      @every = every
      @metadata = metadata
      @extra = extra
      @count = 0
      # Sidekiq runs jobs on several threads: one lock around the counter and the dump.
      @mutex = Mutex.new
      @loaded_at = Time.now.to_i
      FileUtils.mkdir_p(@dir)
    end

    # Counts one unit of work; every `every` units, writes a dump. Returns the dump's path or nil.
    def tick
      return nil if @every <= 0

      @mutex.synchronize do
        @count += 1
        return nil unless (@count % @every).zero?

        dump(@count)
      end
    end

    private

    def dump(jobs)
      # A full GC first: what is left is what the process really retains.
      GC.start(full_mark: true, immediate_sweep: true)
      base = File.join(@dir, "heap-#{Process.pid}-#{Time.now.to_i}-#{jobs}.dump")
      File.open("#{base}.tmp", "w") { |file| ObjectSpace.dump_all(output: file) }
      write_sidecar(base) if @metadata
      File.rename("#{base}.tmp", base)
      base
    rescue StandardError => e
      warn "heapfleet: cannot write a heap dump: #{e.class}: #{e.message}"
      File.delete("#{base}.tmp") if base && File.exist?("#{base}.tmp")
      nil
    end

    def write_sidecar(base)
      fields = {
        # Tells apart processes that reuse a pid (computed here: a forked worker has its own).
        instance: "#{Process.pid}-#{@loaded_at}",
        gc_count: GC.count,
        heap_live_slots: GC.stat[:heap_live_slots],
        rss_bytes: rss_bytes,
        ruby_version: RUBY_VERSION,
        app_version: ENV["HEAPFLEET_APP_VERSION"] || ENV["APP_VERSION"] || ENV["GIT_SHA"]
      }.merge(@extra).compact
      File.write("#{base}.json.tmp", JSON.generate(fields))
      File.rename("#{base}.json.tmp", "#{base}.json")
    end

    # Resident set size from /proc (Linux); nil elsewhere.
    def rss_bytes
      line = File.foreach("/proc/self/status").find { |l| l.start_with?("VmRSS:") }
      line && Integer(line.split[1]) * 1024
    rescue StandardError
      nil
    end
  end

  # Allocation sites and generations in the dumps: on unless HEAPFLEET_TRACE=0.
  def self.start_tracing
    ObjectSpace.trace_object_allocations_start unless ENV["HEAPFLEET_TRACE"] == "0"
  end

  # The Sidekiq server middleware: one tick per job, whether it succeeds or raises.
  class SidekiqMiddleware
    def initialize(dumper = nil)
      @dumper = dumper || Dumper.new(extra: { sidekiq_version: Sidekiq::VERSION })
    end

    def call(_worker, _job, _queue)
      yield
    ensure
      @dumper.tick
    end
  end
end

if defined?(Sidekiq)
  Sidekiq.configure_server do |config|
    Heapfleet.start_tracing
    dumper = Heapfleet::Dumper.new(extra: { sidekiq_version: Sidekiq::VERSION })
    config.server_middleware do |chain|
      chain.add Heapfleet::SidekiqMiddleware, dumper
    end
  end
end
