# frozen_string_literal: true

# heapfleet for Rack (web processes): writes a heap dump every N requests for `heapfleet agent`.
#
#   # config.ru (or config/application.rb: config.middleware.use Heapfleet::RackMiddleware)
#   require_relative "heapfleet_rack"
#   use Heapfleet::RackMiddleware
#
# Same settings and files as heapfleet_sidekiq.rb (HEAPFLEET_DUMP_DIR, HEAPFLEET_DUMP_EVERY,
# HEAPFLEET_TRACE, HEAPFLEET_METADATA), counting requests instead of jobs. The dump is taken
# after the response body is closed, in the request thread that reached the count, so one
# request in N is slower by the time a dump takes. With a forking server (Puma in cluster
# mode, Unicorn) each worker counts and dumps on its own from the fork on (dumps are named by
# the worker's pid).

require_relative "heapfleet_sidekiq"

module Heapfleet
  # Counts requests; every N, dumps once the response is done.
  class RackMiddleware
    def initialize(app, dumper = nil)
      @app = app
      Heapfleet.start_tracing
      @dumper = dumper || Dumper.new
    end

    def call(env)
      status, headers, body = @app.call(env)
      [status, headers, Rack::BodyProxy.new(body) { @dumper.tick }]
    end
  end
end
