// Starting runs over HTTP: only workflow files the serve configuration lists (`workflows`),
// by name or by path, in the serving process. Used by `POST /v1/runs` and Dagu's
// `POST /api/v1/dags/{name}/start`.
import { resolve } from "node:path";
import { isRunId } from "../contract.js";
import { SmithersError } from "../errors.js";

/**
 * The allow-listed workflow a request names: `name` (a key of `workflows`) or `path` (one
 * of its files, absolute or relative to the serve process's directory).
 * @param {Map<string, string>} workflows
 * @param {{ name?: string, path?: string }} which
 * @returns {{ name: string, file: string }}
 */
export function allowedWorkflow(workflows, { name, path }) {
  if (name !== undefined) {
    const file = workflows.get(name);
    if (file) return { name, file };
  } else if (path !== undefined) {
    const wanted = resolve(path);
    for (const [key, file] of workflows) if (file === wanted) return { name: key, file };
  }
  const known = [...workflows.keys()];
  throw new SmithersError(
    "WORKFLOW_NOT_FOUND",
    `${name !== undefined ? `no workflow named ${JSON.stringify(name)}` : `${JSON.stringify(path)} is not a workflow`} this server may start` +
      (known.length ? ` (workflows: ${known.join(", ")})` : " (the serve configuration lists none under \"workflows\")"),
    { name: name ?? null, path: path ?? null },
  );
}

/**
 * Starts a run of an allow-listed workflow and answers once it is recorded; the serving
 * engine drives it on. The starter is the caller's user.
 * @param {{ engine: import("../engine.js").SmithersEngine, config: any, log: (line: string) => void }} ctx
 * @param {{ name?: string, path?: string, input?: unknown, runId?: string, startedBy: string }} request
 */
export async function startAllowed(ctx, { name, path, input = {}, runId, startedBy }) {
  if (runId !== undefined && !isRunId(runId)) {
    throw new SmithersError("INVALID_REQUEST", "runId must be 1-128 letters, digits and _ . : - (not only dots)");
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new SmithersError("INVALID_REQUEST", "input must be a JSON object");
  }
  const workflow = allowedWorkflow(ctx.config.workflows ?? new Map(), { name, path });
  const { runId: id, done } = await ctx.engine.start(workflow.file, { input, runId, startedBy });
  ctx.log(`started ${workflow.name} as run ${id} for ${startedBy}`);
  done.then(
    (r) => ctx.log(`run ${id}: ${r.status}${r.error ? ` (${r.error.code})` : ""}`),
    (e) => ctx.log(`run ${id} stopped: ${e?.code ?? "ERROR"} ${e?.message ?? e}`),
  );
  return { runId: id, workflow: workflow.name, file: workflow.file };
}
