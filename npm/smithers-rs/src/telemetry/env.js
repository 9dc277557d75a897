// Whether OpenTelemetry traces are configured, by the standard variables: an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp,
// and neither OTEL_TRACES_EXPORTER=none nor OTEL_SDK_DISABLED=true. Read by every engine made
// with `tracing` (the CLI's, serve's, a worker's): when this says no, nothing of
// telemetry/trace.js nor of OpenTelemetry is loaded (start-up: ARCHITECTURE.md). fast.cjs
// holds the same test (it cannot import this module).

/** @param {Record<string, string | undefined>} [env] */
export function tracesConfigured(env = process.env) {
  if (String(env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return false;
  const exporters = String(env.OTEL_TRACES_EXPORTER ?? "").trim().toLowerCase();
  if (exporters === "none") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || exporters.split(",").includes("otlp"));
}
