// Reading what SMITHERS_LOG wrote to SMITHERS_LOG_FILE (the text format), for tests that
// assert documented log lines (README "Seeing inside").
import { existsSync, readFileSync } from "node:fs";

/** timestamp, level, target: message, fields — the tracing-subscriber text format. */
export const LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (ERROR| WARN| INFO|DEBUG|TRACE) ([a-z_]+(?:::[a-z_]+)*): (.+)$/;

/** The lines of a log file (none while it does not exist). */
export function logLines(file) {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
}

/** The lines of `target` whose message starts with `message`, for run `runId`. */
export const findLines = (lines, target, message, runId) =>
  lines.filter((l) => l.includes(` ${target}: ${message}`) && (!runId || l.includes(`run_id="${runId}"`)));
