// Building a workflow in code: task / approval / sequence / parallel / branch / loop, then
// workflow({ name, steps }). The result is a workflow object like smithers(build) returns:
// its build(ctx) produces the element tree our JSX components produce, so the renderer, the
// driver, the engine and the CLI run it on the same path and it renders to the same graph
// descriptor. The TOON loader (toon/compile.js) compiles .toon files onto the same node
// model (graphWorkflow below).
import { dirname } from "node:path";
import { Approval, Branch, Loop, Parallel, Sequence, Task, Workflow } from "./components.js";
import { CONTRACT, snakeCase, tableKeyProblem } from "./contract.js";
import { checkIdentifier } from "./create.js";
import { SmithersError } from "./errors.js";
import { jsx } from "./jsx-runtime.js";
import { approvalDecisionSchema, commandResultSchema, isPlainObject, toJsonSchema } from "./schema.js";
import { FieldTypeError, fieldMapToSchema } from "./toon/fields.js";

const BUILDER_NODE = Symbol.for("smithers.builderNode");
const { onDeny: ON_DENY, onMaxReached: ON_MAX_REACHED } = CONTRACT;
/** Names the functions' argument object always has; a `needs` alias may not take one. */
const SCOPE_NAMES = new Set(["input", "ctx", "loop"]);

// ---------------------------------------------------------------- table names

/** `approve-deploy` -> `approveDeploy`: the output table key derived from a node id. */
export function tableKeyFor(id) {
  const parts = String(id).split(/[^A-Za-z0-9_]+/).filter(Boolean);
  return parts.map((p, i) => (i === 0 ? p : p[0].toUpperCase() + p.slice(1))).join("");
}

/** An output key the core will accept (ident.rs check_table_key), else INVALID_IDENTIFIER. */
export function checkTableKey(key, what) {
  checkIdentifier(key, what);
  // An identifier the core still refuses as a table: its SQL name is reserved.
  const reserved = tableKeyProblem(key);
  if (reserved) throw new SmithersError("INVALID_IDENTIFIER", `${what} ${JSON.stringify(key)}: table ${reserved}`, { name: key });
}

/**
 * Output tables of one workflow: key -> JSON Schema. Registering a key twice is fine with
 * an equal schema (several nodes, one table); a different schema, or another key with the
 * same SQL name, throws `conflict(message)`.
 */
export class TableRegistry {
  constructor() {
    this.schemas = {};
    this.sqlNames = new Map();
  }

  /** @param {string} key @param {Record<string, any>} schema @param {(message: string) => Error} conflict */
  add(key, schema, conflict) {
    const existing = this.schemas[key];
    if (existing !== undefined) {
      if (JSON.stringify(existing) !== JSON.stringify(schema)) {
        throw conflict(`table "${key}" is already registered with another schema`);
      }
      return;
    }
    const sql = snakeCase(key);
    const other = this.sqlNames.get(sql);
    if (other !== undefined) throw conflict(`tables "${other}" and "${key}" would both be the SQL table ${sql}`);
    this.sqlNames.set(sql, key);
    this.schemas[key] = schema;
  }
}

// ---------------------------------------------------------------- the node model
//
// Nodes shared by the builder and the TOON compiler. Functions take (env, frame):
//   env.ctx             the render's ctx (live: compute bodies run later and read fresh rows)
//   env.step(id)        latest output row of node `id`, or undefined
//   env.iteration(loop) 1-based current iteration of loop `loop`
//   frame.loops         ids of the enclosing loops, outermost first
//
// { kind: "task", id, table, dependsOn, run | command | workflow, review?, skipIf?, retries?,
//   timeoutMs?, continueOnFail?, label? }
//    command: a <Task command> spec, or a function (env, frame) -> spec
//    workflow: { path, input(env, taskCtx) } a sub-workflow file run as a sub-run
// { kind: "approval", id, table, dependsOn, request, onDeny, allowedUsers?, allowedScopes? }
//    request(env, frame) -> { title, summary? } | null (null: not ready, the title is the id)
// { kind: "sequence", children } | { kind: "parallel", maxConcurrency?, children }
// { kind: "branch", condition, then: node | null, else: node | null }
// { kind: "loop", id, until, maxIterations, onMaxReached, children }

/**
 * A workflow object (the shape smithers(build) returns) from nodes.
 * @param {{ name: string, steps: any[], schemas: Record<string, any>, inputSchema?: any,
 *   tableOf: Map<string, string>, dbPath?: string | null, source?: string, file?: string }} spec
 */
export function graphWorkflow({ name, steps, schemas, inputSchema = null, tableOf, dbPath = null, source, file, handlers = {}, mail = null }) {
  const build = (ctx) => {
    const env = {
      ctx,
      step: (id) => {
        const table = tableOf.get(id);
        return table === undefined ? undefined : ctx.latest(table, id);
      },
      iteration: (loopId) => (ctx.iterations?.[loopId] ?? 0) + 1,
    };
    const state = { env, rendered: new Set(), deps: [] };
    const children = steps.map((node) => toElement(node, state, { loops: [] }));
    // A dependency on a node this render does not contain (a branch not taken) is dropped:
    // the core accepts dependsOn only on nodes of the graph.
    for (const [props, deps] of state.deps) {
      const present = deps.filter((id) => state.rendered.has(id));
      if (present.length) props.dependsOn = present;
    }
    return jsx(Workflow, { name, ...handlers, children });
  };
  return {
    __smithersWorkflow: true,
    build,
    schemas,
    schemaKeys: new Map(),
    jsonSchemas: schemas,
    inputSchema,
    dbPath,
    name,
    source,
    // Mail the run's driver sends when it waits or fails (Dagu's mail_on).
    ...(mail ? { mail } : {}),
    // Where relative paths in the workflow resolve: the .toon file's folder.
    ...(file ? { file, baseDir: dirname(file) } : {}),
  };
}

function toElement(node, state, frame) {
  if (node === null || node === undefined) return null;
  const { env } = state;
  switch (node.kind) {
    case "task": {
      state.rendered.add(node.id);
      const props = { id: node.id, output: node.table };
      if (node.command) {
        // A command spec, or (Dagu) a function of the render: its env reads upstream outputs.
        Object.assign(props, typeof node.command === "function" ? node.command(env, frame) : node.command);
      } else if (node.workflow) {
        props.workflow = node.workflow.path;
        props.input = (taskCtx) => node.workflow.input(env, taskCtx);
      } else {
        props.children = (taskCtx) => node.run({ ...env, task: taskCtx }, frame);
      }
      if (node.review) props.approval = node.review;
      if (node.skipIf && node.skipIf(env, frame)) props.skipIf = true;
      if (node.retries != null) props.retries = node.retries;
      if (node.timeoutMs != null) props.timeoutMs = node.timeoutMs;
      if (node.continueOnFail) props.continueOnFail = true;
      if (node.label != null) props.label = node.label;
      if (node.dependsOn.length) state.deps.push([props, node.dependsOn]);
      return jsx(Task, props);
    }
    case "approval": {
      state.rendered.add(node.id);
      const request = node.request(env, frame) ?? { title: node.id };
      if (typeof request?.title !== "string") {
        throw new SmithersError("INVALID_PROP", `approval "${node.id}": request must give { title: string, summary? }`, { id: node.id });
      }
      const props = {
        id: node.id,
        output: node.table,
        request: { title: request.title, summary: request.summary == null ? null : String(request.summary) },
        onDeny: node.onDeny,
      };
      if (node.allowedUsers) props.allowedUsers = node.allowedUsers;
      if (node.allowedScopes) props.allowedScopes = node.allowedScopes;
      if (node.quorum) props.quorum = node.quorum;
      if (node.input) props.input = node.input;
      if (node.required) props.required = node.required;
      // A deadline: <Approval timeoutMs deadline onTimeout> (checked by the renderer).
      for (const key of ["timeoutMs", "deadline", "onTimeout", "remind", "escalate"]) if (node[key] != null) props[key] = node[key];
      if (node.dependsOn.length) state.deps.push([props, node.dependsOn]);
      return jsx(Approval, props);
    }
    case "sequence":
      return jsx(Sequence, { children: node.children.map((c) => toElement(c, state, frame)) });
    case "parallel": {
      const props = { children: node.children.map((c) => toElement(c, state, frame)) };
      if (node.maxConcurrency != null) props.maxConcurrency = node.maxConcurrency;
      return jsx(Parallel, props);
    }
    case "branch": {
      const chosen = Boolean(node.condition(env, frame));
      return jsx(Branch, {
        if: chosen,
        then: chosen ? toElement(node.then, state, frame) : null,
        else: chosen ? null : toElement(node.else, state, frame),
      });
    }
    case "loop": {
      const inner = { loops: [...frame.loops, node.id] };
      return jsx(Loop, {
        id: node.id,
        until: Boolean(node.until(env, inner)),
        maxIterations: node.maxIterations,
        onMaxReached: node.onMaxReached,
        children: node.children.map((c) => toElement(c, state, inner)),
      });
    }
    default:
      throw new SmithersError("INVALID_WORKFLOW", `unknown node kind ${JSON.stringify(node.kind)}`);
  }
}

// ---------------------------------------------------------------- the public builder

const isNode = (v) => typeof v === "object" && v !== null && v[BUILDER_NODE] !== undefined;

function spec(kind, fields) {
  return Object.freeze({ [BUILDER_NODE]: kind, kind, ...fields });
}

function need(cond, message, details) {
  if (!cond) throw new SmithersError("INVALID_ARGUMENT", message, details);
}

/** The options each builder function takes; any other is refused, naming it. */
const OPTIONS = {
  task: ["output", "table", "needs", "run", "command", "script", "cwd", "env", "parse", "shell", "approval", "skipIf", "retries", "maxAttempts", "timeoutMs", "continueOnFail", "label"],
  approval: ["request", "needs", "onDeny", "table", "allowedUsers", "allowedScopes", "input", "required", "timeoutMs", "deadline", "onTimeout", "remind", "escalate", "quorum"],
  loop: ["id", "until", "maxIterations", "onMaxReached", "needs"],
  branch: ["if", "then", "else", "needs"],
  parallel: ["maxConcurrency"],
  workflow: ["name", "steps", "input", "dbPath"],
};

function knownOptions(kind, options, where) {
  const allowed = OPTIONS[kind];
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key) && options[key] !== undefined) {
      throw new SmithersError("UNSUPPORTED_PROP", `${where}: ${key} is not an option of ${kind}() (it takes ${allowed.join(", ")})`, { option: key, prop: key });
    }
  }
}

/**
 * A task: `run` computes the output (sync or async) from `{ input, ctx, loop, ...needs }`.
 * @param {string} id
 * @param {{ output: unknown, table?: string, needs?: any, run: Function, skipIf?: unknown,
 *   retries?: number, maxAttempts?: number, timeoutMs?: number, continueOnFail?: boolean, label?: string }} options
 */
export function task(id, options) {
  need(typeof id === "string" && id !== "", "task(id, options): id must be a non-empty string");
  need(isPlainObject(options), `task("${id}"): options must be an object`);
  knownOptions("task", options, `task("${id}")`);
  const isCommand = options.command != null || options.script != null;
  need(options.output !== undefined || isCommand, `task("${id}"): options.output (a schema) is required`, { id });
  need(
    isCommand ? options.run === undefined && (options.command == null) !== (options.script == null) : typeof options.run === "function",
    `task("${id}"): give exactly one of run (a function), command or script`,
    { id },
  );
  need(!(options.retries != null && options.maxAttempts != null), `task("${id}"): give retries or maxAttempts, not both`);
  return spec("task", { id, options });
}

/**
 * An approval gate: pauses the run until someone approves or denies it. The decision
 * ({ approved, note, decidedBy, decidedAt }) is written to `table` (default: derived from the id).
 * `request` is an object, or a function of `{ input, ctx, loop, ...needs }` called once every
 * need has an output (until then the title is the id).
 * @param {string} id
 * @param {{ request: any, needs?: any, onDeny?: "fail" | "continue" | "skip", table?: string,
 *   allowedUsers?: string[], allowedScopes?: string[] }} options
 */
export function approval(id, options) {
  need(typeof id === "string" && id !== "", "approval(id, options): id must be a non-empty string");
  need(isPlainObject(options), `approval("${id}"): options must be an object`);
  knownOptions("approval", options, `approval("${id}")`);
  const { request } = options;
  need(
    typeof request === "function" || (isPlainObject(request) && typeof request.title === "string"),
    `approval("${id}"): options.request must be { title, summary? } or a function returning it`,
    { id },
  );
  // As <Approval>: a denial is recorded (approved: false) and the run goes on, unless "fail".
  const onDeny = options.onDeny ?? "continue";
  need(ON_DENY.includes(onDeny), `approval("${id}"): onDeny must be one of ${ON_DENY.join(", ")}`, { id });
  return spec("approval", { id, options: { ...options, onDeny } });
}

/** Children run one after another. */
export function sequence(...children) {
  return spec("sequence", { children: flatChildren(children, "sequence") });
}

/** Children run at once (`maxConcurrency` at most). `parallel([a, b], { maxConcurrency: 2 })` */
export function parallel(children, options = {}) {
  need(Array.isArray(children), "parallel(children, options?): children must be an array");
  need(isPlainObject(options), "parallel(children, options?): options must be an object");
  knownOptions("parallel", options, "parallel()");
  return spec("parallel", { children: flatChildren(children, "parallel"), maxConcurrency: options.maxConcurrency });
}

/**
 * `then` (or `else`) depending on `if`: a value, or a function of `{ input, ctx, loop, ...needs }`
 * evaluated at each render (needs without an output yet are undefined).
 */
export function branch(options) {
  need(isPlainObject(options), "branch(options): options must be an object");
  need("if" in options, "branch(options): options.if is required");
  knownOptions("branch", options, "branch()");
  return spec("branch", {
    options,
    then: optionalChild(options.then, "branch then"),
    else: optionalChild(options.else, "branch else"),
  });
}

/**
 * Runs `children` in order, again and again, until `until` is true (checked after each
 * iteration) or `maxIterations` (default 5) is reached.
 */
export function loop(options, children) {
  need(isPlainObject(options), "loop(options, children): options must be an object");
  need(typeof options.id === "string" && options.id !== "", "loop(options, children): options.id is required");
  knownOptions("loop", options, `loop("${options.id}")`);
  need(Array.isArray(children), `loop("${options.id}"): children must be an array`);
  const onMaxReached = options.onMaxReached ?? "return-last";
  need(ON_MAX_REACHED.includes(onMaxReached), `loop("${options.id}"): onMaxReached must be return-last or fail`);
  return spec("loop", { options: { ...options, onMaxReached }, children: flatChildren(children, `loop "${options.id}"`) });
}

/**
 * A JSON Schema from TOON-style field types: `fields({ version: "string", env: "'dev' | 'prod'",
 * tags: "string[]", note: "string?" })`.
 */
export function fields(map) {
  try {
    return fieldMapToSchema(map);
  } catch (e) {
    if (e instanceof FieldTypeError) {
      throw new SmithersError("INVALID_FIELD_TYPE", `fields(): ${e.path ? `${e.path}: ` : ""}${e.message}`, { key: e.path });
    }
    throw e;
  }
}

/**
 * The workflow: `steps` run one after another (like TOON's top-level steps).
 * @param {{ name: string, steps: any[], input?: unknown, dbPath?: string }} options
 */
export function workflow(options) {
  need(isPlainObject(options), "workflow(options): options must be an object");
  knownOptions("workflow", options, "workflow()");
  const { name, steps } = options;
  need(typeof name === "string" && name !== "", "workflow(options): options.name must be a non-empty string");
  need(Array.isArray(steps) && steps.length > 0, `workflow("${name}"): options.steps must be a non-empty array`);
  const inputSchema = options.input === undefined ? null : toJsonSchema(options.input, "input", { kind: "input" });

  // Pass 1: every node id, in order, so needs may name any node and ids are unique.
  const ids = new Set();
  const visit = (node) => {
    if (!isNode(node)) throw new SmithersError("INVALID_ARGUMENT", `workflow("${name}"): ${describe(node)} is not a builder node (task, approval, sequence, …)`);
    const id = node.kind === "loop" ? node.options.id : node.id;
    if (id !== undefined) {
      if (ids.has(id)) throw new SmithersError("DUPLICATE_ID", `workflow("${name}"): duplicate id "${id}"`, { id });
      ids.add(id);
    }
    for (const child of childrenOf(node)) visit(child);
  };
  for (const node of steps) visit(node);

  // Pass 2: nodes of the shared model.
  const tables = new TableRegistry();
  const tableOf = new Map();
  const conflict = (message) => new SmithersError("OUTPUT_CONFLICT", `workflow("${name}"): ${message}`);
  const register = (id, table, schemaLike) => {
    const key = table ?? tableKeyFor(id);
    checkTableKey(key, table === undefined ? `Output table derived from id "${id}" (pass table: "…")` : `table of "${id}":`);
    const json = toJsonSchema(schemaLike, key);
    for (const field of Object.keys(json.properties)) checkIdentifier(field, `Field of "${key}":`);
    tables.add(key, json, conflict);
    tableOf.set(id, key);
    return key;
  };
  const needsOf = (owner, needs) => resolveNeeds(owner, needs, ids);
  const compile = (node) => {
    switch (node.kind) {
      case "task": {
        const o = node.options;
        const needs = needsOf(node.id, o.needs);
        const run = o.run;
        const out = {
          kind: "task",
          id: node.id,
          table: register(node.id, o.table, o.output ?? commandResultSchema),
          dependsOn: needs.map((n) => n.id),
        };
        if (run) out.run = (env, frame) => run(scope(env, frame, needs));
        else {
          out.command = {};
          for (const k of ["command", "script", "cwd", "env", "parse", "shell"]) if (o[k] != null) out.command[k] = o[k];
        }
        if (o.approval != null) out.review = o.approval === true ? {} : o.approval;
        if (o.skipIf !== undefined) out.skipIf = condition(o.skipIf, needs);
        if (o.retries != null) out.retries = o.retries;
        if (o.maxAttempts != null) {
          need(Number.isInteger(o.maxAttempts) && o.maxAttempts >= 1, `task("${node.id}"): maxAttempts must be an integer >= 1`);
          out.retries = o.maxAttempts - 1;
        }
        if (o.timeoutMs != null) out.timeoutMs = o.timeoutMs;
        if (o.continueOnFail) out.continueOnFail = true;
        if (o.label != null) out.label = o.label;
        return out;
      }
      case "approval": {
        const o = node.options;
        const needs = needsOf(node.id, o.needs);
        const { request } = o;
        const out = {
          kind: "approval",
          id: node.id,
          table: register(node.id, o.table, approvalDecisionSchema),
          dependsOn: needs.map((n) => n.id),
          onDeny: o.onDeny,
          request:
            typeof request === "function"
              ? (env, frame) => {
                  const s = scope(env, frame, needs);
                  return needs.every((n) => s[n.alias] !== undefined) ? request(s) : null;
                }
              : () => request,
        };
        if (o.allowedUsers) out.allowedUsers = o.allowedUsers;
        if (o.allowedScopes) out.allowedScopes = o.allowedScopes;
        for (const key of ["timeoutMs", "deadline", "onTimeout", "remind", "escalate"]) if (o[key] != null) out[key] = o[key];
        if (o.quorum) out.quorum = o.quorum;
        if (o.input) out.input = o.input;
        if (o.required) out.required = o.required;
        return out;
      }
      case "sequence":
        return { kind: "sequence", children: node.children.map(compile) };
      case "parallel": {
        const out = { kind: "parallel", children: node.children.map(compile) };
        if (node.maxConcurrency != null) out.maxConcurrency = node.maxConcurrency;
        return out;
      }
      case "branch": {
        const needs = needsOf("branch", node.options.needs);
        return {
          kind: "branch",
          condition: condition(node.options.if, needs),
          then: node.then ? compile(node.then) : null,
          else: node.else ? compile(node.else) : null,
        };
      }
      case "loop": {
        const o = node.options;
        const needs = needsOf(o.id, o.needs);
        return {
          kind: "loop",
          id: o.id,
          until: condition(o.until ?? false, needs),
          maxIterations: o.maxIterations ?? 5,
          onMaxReached: o.onMaxReached,
          children: node.children.map(compile),
        };
      }
      default:
        throw new SmithersError("INVALID_ARGUMENT", `unknown builder node ${JSON.stringify(node.kind)}`);
    }
  };
  const nodes = steps.map(compile);
  return graphWorkflow({
    name,
    steps: nodes,
    schemas: tables.schemas,
    inputSchema,
    tableOf,
    dbPath: options.dbPath ?? null,
    source: "builder",
  });
}

/** `{ alias: handle | "id" }` or `[handle | "id"]` -> [{ alias, id }]. */
function resolveNeeds(owner, needs, ids) {
  if (needs === undefined) return [];
  let entries;
  if (Array.isArray(needs)) {
    entries = needs.map((n) => {
      const id = typeof n === "string" ? n : n?.id;
      return [id, n];
    });
  } else if (isPlainObject(needs)) {
    entries = Object.entries(needs);
  } else {
    throw new SmithersError("INVALID_ARGUMENT", `"${owner}": needs must be an object { alias: node } or an array of nodes or ids`);
  }
  return entries.map(([alias, n]) => {
    const id = typeof n === "string" ? n : isNode(n) && (n.kind === "task" || n.kind === "approval") ? n.id : undefined;
    if (id === undefined) {
      throw new SmithersError("INVALID_ARGUMENT", `"${owner}": needs.${alias} must be a task, an approval, or a node id`);
    }
    if (!ids.has(id)) {
      throw new SmithersError("UNKNOWN_NEED", `"${owner}" needs "${id}", which is not a node of this workflow`, { id: owner, need: id });
    }
    if (id === owner) throw new SmithersError("UNKNOWN_NEED", `"${owner}" cannot need itself`, { id: owner, need: id });
    if (SCOPE_NAMES.has(alias)) {
      throw new SmithersError("INVALID_ARGUMENT", `"${owner}": needs alias "${alias}" clashes with ${[...SCOPE_NAMES].join(", ")}`);
    }
    return { alias, id };
  });
}

/** The argument of user functions: `{ input, ctx, loop: { iteration }, ...needs }`. */
function scope(env, frame, needs) {
  const innermost = frame.loops[frame.loops.length - 1];
  const out = { input: env.ctx.input, ctx: env.ctx, loop: { iteration: innermost === undefined ? 0 : env.iteration(innermost) } };
  for (const { alias, id } of needs) out[alias] = env.step(id);
  return out;
}

function condition(value, needs) {
  if (typeof value === "function") return (env, frame) => value(scope(env, frame, needs));
  const constant = Boolean(value);
  return () => constant;
}

function childrenOf(node) {
  if (node.kind === "sequence" || node.kind === "parallel" || node.kind === "loop") return node.children;
  if (node.kind === "branch") return [node.then, node.else].filter(Boolean);
  return [];
}

function flatChildren(children, what) {
  const out = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  for (const c of out) {
    if (!isNode(c)) throw new SmithersError("INVALID_ARGUMENT", `${what}: ${describe(c)} is not a builder node`);
  }
  return out;
}

/** then/else: a node, an array of nodes (run in order), or nothing. */
function optionalChild(value, what) {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) return sequence(...value);
  if (!isNode(value)) throw new SmithersError("INVALID_ARGUMENT", `${what}: ${describe(value)} is not a builder node`);
  return value;
}

function describe(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "function") return `function ${v.name || "(anonymous)"}`;
  return typeof v === "object" ? "an object" : JSON.stringify(v);
}
