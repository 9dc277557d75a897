// Whether the process that owns a run is alive, read the way the core reads it
// (crates/smithers-core/src/owner.rs): an owner is `host:pid:start-time:engine`; on the same
// host, /proc/<pid>/stat tells a live process from a dead one (or one that reused the pid).
import { existsSync, readFileSync } from "node:fs";

function hostname() {
  let text = null;
  for (const file of ["/proc/sys/kernel/hostname", "/etc/hostname"]) {
    try {
      text = readFileSync(file, "utf8");
      break;
    } catch {
      // try the next one
    }
  }
  const name = text?.trim();
  return name && !name.includes(":") ? name : "localhost";
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat). */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces: count fields after its ')'.
    return stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/)[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * @param {string} owner
 * @returns {"alive" | "dead" | "unknown"} unknown for another host or an unreadable owner
 */
export function ownerLiveness(owner) {
  const parts = String(owner).split(":");
  if (parts.length !== 4) return "unknown";
  const [host, pid, start] = parts;
  if (host !== hostname() || !/^\d+$/.test(pid) || !/^\d+$/.test(start)) return "unknown";
  const t = startTime(pid);
  if (t !== null) return t === start ? "alive" : "dead";
  return existsSync("/proc/self/stat") ? "dead" : "unknown";
}
