// `smithers worker` processes for the worker tests: spawned with --json, their log lines parsed.
import { SmithersEngine } from "../../npm/smithers-rs/src/index.js";
import { spawnCli } from "./durability.js";

/**
 * Starts `smithers worker --db <db> --json` (plus `args`). `events()` are its log lines so far
 * (one object each: started, took, released, …); `stop(signal)` sends the signal and resolves
 * with its end.
 */
export function startWorker(db, { env = {}, args = [] } = {}) {
  const spawned = spawnCli(["worker", "--db", db, "--json", ...args], { env });
  const events = () =>
    spawned
      .output()
      .stdout.split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  return {
    child: spawned.child,
    done: spawned.done,
    events,
    took: () => events().filter((e) => e.event === "took"),
    stderr: () => spawned.output().stderr,
    stop: (signal = "SIGTERM") => {
      spawned.child.kill(signal);
      return spawned.done;
    },
  };
}

/** Runs `fn` with an engine on `db`, closed after. */
export function withEngine(db, fn) {
  const engine = new SmithersEngine({ database: db });
  try {
    return fn(engine);
  } finally {
    engine.close();
  }
}

/** Queues `n` runs of `file` (inputs { n: i }) for workers; returns their ids. */
export async function enqueue(db, file, n, input = (i) => ({ n: i })) {
  const engine = new SmithersEngine({ database: db });
  try {
    const ids = [];
    for (let i = 0; i < n; i++) ids.push((await engine.enqueue(file, { input: input(i) })).runId);
    return ids;
  } finally {
    engine.close();
  }
}
