import { Approval, Branch, Loop, Parallel, Ralph, Sequence, Task, Workflow, useCtx } from "./components.js";
import { SmithersError } from "./errors.js";
import { isPlainObject, toJsonSchema } from "./schema.js";

// Same rule as the core's SQL identifiers (ARCHITECTURE.md, Tables).
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]*$/;

/** @param {string} name @param {string} what */
export function checkIdentifier(name, what) {
  if (typeof name !== "string" || !IDENTIFIER.test(name) || Buffer.byteLength(name) > 63) {
    throw new SmithersError(
      "INVALID_IDENTIFIER",
      `${what} ${JSON.stringify(name)} must match ^[A-Za-z][A-Za-z0-9_]*$ (at most 63 bytes)`,
      { name },
    );
  }
}

/**
 * @param {Record<string, unknown>} schemas output schemas by table key; `input` is the input schema
 * @param {{ dbPath?: string }} [opts]
 */
export function createSmithers(schemas, opts = {}) {
  if (!isPlainObject(schemas)) {
    throw new SmithersError("INVALID_ARGUMENT", "createSmithers(schemas): schemas must be an object of key -> schema");
  }
  // Converted once, here, so a bad schema fails when the workflow file loads.
  const jsonSchemas = {};
  let inputSchema = null;
  /** Schema object -> key; null marks an object registered under several keys. */
  const schemaKeys = new Map();
  const tables = {};
  for (const [key, schema] of Object.entries(schemas)) {
    checkIdentifier(key, "Schema key");
    if (key === "input") {
      inputSchema = toJsonSchema(schema, key, { kind: "input" });
      continue;
    }
    const json = toJsonSchema(schema, key);
    for (const field of Object.keys(json.properties)) checkIdentifier(field, `Field of "${key}":`);
    jsonSchemas[key] = json;
    if (typeof schema === "object" && schema !== null) {
      schemaKeys.set(schema, schemaKeys.has(schema) ? null : key);
    }
    tables[key] = Object.freeze({ __smithersTable: true, key });
  }

  /**
   * @param {(ctx: any) => unknown} build
   * @param {{ dbPath?: string }} [wfOpts]
   */
  function smithers(build, wfOpts = {}) {
    if (typeof build !== "function") {
      throw new SmithersError("INVALID_ARGUMENT", "smithers(build): build must be a function (ctx) => <Workflow>…</Workflow>");
    }
    return {
      __smithersWorkflow: true,
      build,
      schemas,
      schemaKeys,
      jsonSchemas,
      inputSchema,
      dbPath: wfOpts.dbPath ?? opts.dbPath ?? null,
      name: null,
    };
  }

  return {
    Workflow,
    Sequence,
    Parallel,
    Branch,
    Loop,
    Ralph,
    Task,
    Approval,
    useCtx,
    smithers,
    outputs: schemas,
    tables,
  };
}
