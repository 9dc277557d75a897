// Whether OpenTelemetry traces are configured, by the standard variables: an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp,
// and neither OTEL_TRACES_EXPORTER=none nor OTEL_SDK_DISABLED=true. Read by every engine made
// with `tracing` (the CLI's, serve's, a worker's): when this says no, nothing of
// telemetry/trace.js nor of OpenTelemetry is loaded (start-up: ARCHITECTURE.md). CommonJS, so
// that the CLI's short path (cli/fast.cjs) requires the same test the ES modules import.
"use strict";

/** @param {Record<string, string | undefined>} [env] */
function tracesConfigured(env = process.env) {
  if (String(env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  const exporters = String(env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase();
  if (exporters === "none") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || exporters.split(",").includes("otlp"));
}

module.exports = { tracesConfigured };
