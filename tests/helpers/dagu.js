// Helpers for the Dagu tests: a temp copy of examples/dagu (the DAGs and their stand-in
// scripts, which leave lines in marks.log), the CLI on a database of its own, and readers
// for what the steps printed.
import assert from "node:assert/strict";
import { cpSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EXAMPLES, REPO, expectExit, sandbox, smithers } from "./cli.js";

export const DAGU_EXAMPLES = join(EXAMPLES, "dagu");
/** Stand-ins for curl, jq, claude and git, put first on PATH by the doc test. */
export const FAKE_BIN = join(REPO, "tests/fixtures/dagu-bin");

/**
 * A temp dir holding a copy of examples/dagu; removed when the test ends.
 * @param {import("node:test").TestContext} t
 */
export function daguBox(t, { examples = true } = {}) {
  const b = sandbox("smithers-dagu-");
  t.after(() => b.cleanup());
  if (examples) cpSync(DAGU_EXAMPLES, b.dir, { recursive: true });
  const path = (name) => join(b.dir, name);
  const read = (name) => (existsSync(path(name)) ? readFileSync(path(name), "utf8") : null);
  // --db right after the command: anything after `--` is params.
  const withDb = (args) => [args[0], "--db", b.db, ...args.slice(1)];
  const cli = (args, options = {}) => smithers(withDb(args), { cwd: b.dir, ...options });
  return {
    ...b,
    path,
    read,
    /** The lines the stand-in scripts appended to marks.log. */
    marks: () => (read("marks.log") ?? "").split("\n").filter(Boolean),
    cli,
    /** `smithers …` that must exit with `code`. */
    expect: (code, args, options = {}) => expectExit(assert, code, withDb(args), { cwd: b.dir, ...options }),
    /** `smithers up <dag> --json` that must exit with `code`; returns the JSON answer. */
    async up(dag, code = 3, ...args) {
      const r = await expectExit(assert, code, withDb(["up", dag, "--json", ...args]), { cwd: b.dir });
      return r.json;
    },
    /** `smithers inspect --json`. */
    async inspect(runId) {
      const r = await expectExit(assert, 0, withDb(["inspect", runId, "--json"]), { cwd: b.dir });
      return r.json;
    },
    /** The stdout of a step's latest attempt. */
    async stdout(runId, nodeId) {
      const r = await expectExit(assert, 0, withDb(["logs", runId, "--node", nodeId, "--json"]), { cwd: b.dir });
      return r.json.attempts.at(-1)?.stdout ?? null;
    },
  };
}

/** Node id -> state of an `inspect` answer. */
export const statesOf = (info) => Object.fromEntries(info.nodes.map((n) => [n.nodeId, n.state]));

/** The value after `NAME=` on the last line that has it. */
export function valueOf(text, name) {
  const line = String(text ?? "")
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith(`${name}=`));
  return line === undefined ? undefined : line.slice(name.length + 1);
}
