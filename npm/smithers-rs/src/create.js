import { Approval, Branch, Loop, Parallel, Ralph, Sequence, Task, Workflow, useCtx } from "./components.js";
import { identifierProblem } from "./contract.js";
import { SmithersError } from "./errors.js";
import { isPlainObject, toJsonSchema } from "./schema.js";

/** The core's rule for SQL identifiers (ARCHITECTURE.md, Tables). @param {string} name @param {string} what */
export function checkIdentifier(name, what) {
  if (identifierProblem(name) !== null) {
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
  const tables = {};
  /** Schema object -> the keys it is registered under, in order. */
  const keysOf = new Map();
  for (const [key, schema] of Object.entries(schemas)) {
    checkIdentifier(key, "Schema key");
    if (key === "input") {
      inputSchema = toJsonSchema(schema, key, { kind: "input" });
      continue;
    }
    const json = toJsonSchema(schema, key);
    for (const field of Object.keys(json.properties)) checkIdentifier(field, `Field of "${key}":`);
    jsonSchemas[key] = json;
    if (typeof schema === "object" && schema !== null) keysOf.set(schema, [...(keysOf.get(schema) ?? []), key]);
    tables[key] = Object.freeze({ __smithersTable: true, key });
  }
  // One schema object under several keys (`securityReview: approvalDecisionSchema, qaReview:
  // approvalDecisionSchema`) is one table per key: each `outputs.<key>` is then a handle of
  // its own that behaves as the schema and names its key, so the keys are told apart.
  /** Output handle or schema object -> its key; a schema under several keys -> all of them. */
  const schemaKeys = new Map();
  const outputs = {};
  for (const [key, schema] of Object.entries(schemas)) {
    const keys = key === "input" ? undefined : keysOf.get(schema);
    if (keys === undefined || keys.length === 1) {
      outputs[key] = schema;
      if (keys) schemaKeys.set(schema, key);
      continue;
    }
    const handle = keyedHandle(schema);
    outputs[key] = handle;
    schemaKeys.set(handle, key);
    schemaKeys.set(schema, keys);
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
    outputs,
    tables,
  };
}

/**
 * `outputs.<key>` for a schema object registered under several keys: an object of its own
 * (`schemaKeys` maps it to the key) that is the schema to everything that reads it (zod's
 * methods, `shape`, instanceof).
 */
function keyedHandle(schema) {
  // Reads go to the schema itself (not through the proxy), so getters and methods that keep
  // state on their object see the object they expect.
  return new Proxy(schema, { get: (target, prop) => Reflect.get(target, prop, target) });
}
