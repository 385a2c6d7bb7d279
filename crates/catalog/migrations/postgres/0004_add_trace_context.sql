-- The W3C trace context (traceparent, then tracestate after a newline) of the upload that
-- queued a dump, so its ingest job's span links back to the upload's. NULL when the upload
-- carried none (telemetry off) or the dump was imported locally. Nothing reads it but tracing.

ALTER TABLE dumps ADD COLUMN trace_context TEXT;
