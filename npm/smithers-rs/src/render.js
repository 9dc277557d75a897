// Render a workflow: build a ctx from the core's snapshot, call `workflow.build(ctx)`,
// and turn the element tree into the graph descriptor of ARCHITECTURE.md.
import { dirname, resolve as resolvePath } from "node:path";
import { BUILTINS, setCurrentCtx } from "./components.js";
import { SmithersError } from "./errors.js";
import { Fragment, isElement } from "./jsx-runtime.js";

const ON_DENY = ["fail", "continue", "skip"];
const APPROVAL_MODES = { approve: "decision", select: "select", rank: "rank" };
const ON_MAX_REACHED = ["return-last", "fail"];
/** Run by the driver: onWait each time the run parks; the others once when it ends. */
const HANDLERS = ["onWait", "onSuccess", "onFailure", "onExit"];

/** A handler: a shell command, a function, or a command spec `{ command | script, … }`. */
function isHandler(h) {
  if (typeof h === "function") return true;
  if (typeof h === "string") return h.trim() !== "";
  if (typeof h !== "object" || h === null) return false;
  const text = h.command ?? h.script;
  return (h.command == null) !== (h.script == null) && typeof text === "string" && text.trim() !== "";
}

/**
 * @typedef {{ table: string, nodeId: string, iteration: number, value: Record<string, unknown> }} OutputRow
 * @typedef {{ runId: string, input?: unknown, loops?: Record<string, number>,
 *   nodeLoops?: Record<string, string>, outputs?: OutputRow[], workflowPath?: string | null }} Snapshot
 */

/**
 * The returned `ctx` stays live: compute bodies close over it and may run long after this
 * render (the core re-renders only when a read output changed). The driver should call
 * `addOutput(row)` for each output the core reports, so those bodies read fresh rows.
 * @param {any} workflow the value returned by `smithers(build)`
 * @param {Snapshot} snapshot
 * @returns {{ graph: any, computeFns: Map<string, Function>, ctx: any, addOutput: (row: OutputRow) => void,
 *   dropOutput: (ref: { table: string, nodeId: string, iteration: number }) => void,
 *   handlers: { onWait?: any, onSuccess?: any, onFailure?: any, onExit?: any }, baseDir: string }}
 */
export function renderWorkflow(workflow, snapshot) {
  if (!workflow?.__smithersWorkflow) {
    throw new SmithersError("INVALID_WORKFLOW", "renderWorkflow: not a workflow (expected smithers((ctx) => …))");
  }
  const deps = { nodes: new Set(), all: false };
  const { ctx, addOutput, dropOutput } = createCtx(workflow, snapshot, deps);
  const state = {
    workflow,
    loops: snapshot.loops ?? {},
    ids: new Set(),
    loopIds: new Set(),
    computeFns: new Map(),
    name: "workflow",
    handlers: {},
    // Command tasks run in the workflow file's directory unless they say otherwise.
    baseDir: snapshot.workflowPath ? dirname(snapshot.workflowPath) : (workflow.baseDir ?? process.cwd()),
  };
  const prevCtx = setCurrentCtx(ctx);
  let root;
  try {
    const tree = workflow.build(ctx);
    if (typeof tree?.then === "function") {
      throw new SmithersError("INVALID_WORKFLOW", "smithers((ctx) => …) must return JSX synchronously, not a promise");
    }
    root = renderRoot(tree, state);
  } finally {
    setCurrentCtx(prevCtx);
  }
  const graph = {
    version: 1,
    workflow: { name: state.name },
    schemas: workflow.jsonSchemas,
    renderDeps: deps.all ? "*" : [...deps.nodes].sort(),
    root,
  };
  return { graph, computeFns: state.computeFns, ctx, addOutput, dropOutput, handlers: state.handlers, baseDir: state.baseDir };
}

/**
 * The arguments the driver passes to a compute body: `fn(...computeArgs(ctx))`.
 * Smithers compute bodies take none and close over the render's ctx; passing ctx is a
 * convenience for bodies defined outside the build function.
 */
export function computeArgs(ctx) {
  return [ctx];
}

// ---------------------------------------------------------------- ctx

function createCtx(workflow, snapshot, deps) {
  const runId = snapshot.runId;
  const loops = { ...(snapshot.loops ?? {}) };
  const nodeLoops = snapshot.nodeLoops ?? {};
  const firstLoop = Object.keys(loops)[0];

  // Index the rows once: table -> rows, and table+nodeId -> { rows, byIteration }.
  const byTable = new Map();
  const byNode = new Map();
  const addOutput = (out) => {
    const iteration = out.iteration ?? 0;
    const row = { runId, nodeId: out.nodeId, iteration, ...out.value };
    const nodeKey = `${out.table}\0${out.nodeId}`;
    let entry = byNode.get(nodeKey);
    if (!entry) byNode.set(nodeKey, (entry = { rows: [], byIteration: new Map() }));
    let tableRows = byTable.get(out.table);
    if (!tableRows) byTable.set(out.table, (tableRows = []));
    const old = entry.byIteration.get(iteration);
    if (old) {
      // Upsert, like the output table's primary key (run, node, iteration).
      entry.rows[entry.rows.indexOf(old)] = row;
      tableRows[tableRows.indexOf(old)] = row;
    } else {
      entry.rows.push(row);
      tableRows.push(row);
    }
    entry.byIteration.set(iteration, row);
  };
  for (const out of snapshot.outputs ?? []) addOutput(out);
  // A push-back withdrew this row (its step runs again).
  const dropOutput = (ref) => {
    const entry = byNode.get(`${ref.table}\0${ref.nodeId}`);
    const old = entry?.byIteration.get(ref.iteration ?? 0);
    if (!old) return;
    entry.byIteration.delete(ref.iteration ?? 0);
    entry.rows.splice(entry.rows.indexOf(old), 1);
    const tableRows = byTable.get(ref.table);
    tableRows?.splice(tableRows.indexOf(old), 1);
  };

  const tableKey = (table) => resolveOutputKey(workflow, table, "ctx");
  const nodeEntry = (table, nodeId) => {
    if (typeof nodeId !== "string") {
      throw new SmithersError("INVALID_ARGUMENT", "ctx output lookups need a nodeId string");
    }
    deps.nodes.add(nodeId);
    return byNode.get(`${tableKey(table)}\0${nodeId}`);
  };
  // A node's default iteration is the current iteration of the loop it belongs to.
  const defaultIteration = (nodeId) => {
    const loopId = nodeLoops[nodeId];
    return loopId === undefined ? 0 : (loops[loopId] ?? 0);
  };

  const outputMaybe = (table, { nodeId, iteration } = {}) =>
    nodeEntry(table, nodeId)?.byIteration.get(iteration ?? defaultIteration(nodeId));

  const output = (table, where = {}) => {
    const row = outputMaybe(table, where);
    if (row === undefined) {
      const iteration = where.iteration ?? defaultIteration(where.nodeId);
      throw new SmithersError(
        "MISSING_OUTPUT",
        `No output for node "${where.nodeId}" (iteration ${iteration}) in "${tableKey(table)}"`,
        { table: tableKey(table), nodeId: where.nodeId, iteration },
      );
    }
    return row;
  };

  const latest = (table, nodeId) => {
    const rows = nodeEntry(table, nodeId)?.rows;
    if (!rows) return undefined;
    let best = rows[0];
    for (const row of rows) if (row.iteration > best.iteration) best = row;
    return best;
  };

  const iterationCount = (table, nodeId) => nodeEntry(table, nodeId)?.rows.length ?? 0;

  // outputs(key) and outputs.<key>: every row of a table, so any finished node may matter.
  const outputs = (table) => {
    const key = tableKey(table);
    deps.all = true;
    return byTable.get(key) ?? [];
  };
  for (const key of Object.keys(workflow.jsonSchemas)) {
    Object.defineProperty(outputs, key, { get: () => outputs(key), enumerable: true, configurable: true });
  }

  const ctx = {
    runId,
    input: snapshot.input,
    iteration: firstLoop === undefined ? 0 : loops[firstLoop],
    iterations: loops,
    outputMaybe,
    output,
    latest,
    iterationCount,
    outputs,
  };
  return { ctx, addOutput, dropOutput };
}

/** Table given as a schema object (output handle), a string key, or a `tables.<key>` handle. */
function resolveOutputKey(workflow, table, where) {
  let key = table;
  if (typeof table === "object" && table !== null) {
    if (workflow.schemaKeys.has(table)) {
      key = workflow.schemaKeys.get(table);
      if (key === null) {
        throw new SmithersError(
          "AMBIGUOUS_OUTPUT_SCHEMA",
          `${where}: this schema object is registered under several keys; pass the key as a string`,
        );
      }
    } else if (table.__smithersTable) {
      key = table.key;
    }
  }
  if (typeof key !== "string" || !Object.hasOwn(workflow.jsonSchemas, key)) {
    const shown = typeof key === "string" ? `"${key}"` : "schema object";
    throw new SmithersError(
      "UNKNOWN_OUTPUT_SCHEMA",
      `${where}: ${shown} is not an output schema registered with createSmithers`,
      { key: typeof key === "string" ? key : null },
    );
  }
  return key;
}

// ---------------------------------------------------------------- tree

function renderRoot(tree, state) {
  let node = tree;
  // User components may wrap the <Workflow>.
  while (isElement(node) && typeof node.type === "function" && !node.type.__smithersTag) {
    node = node.type(node.props);
  }
  if (!isElement(node) || node.type !== BUILTINS.get("workflow")) {
    throw new SmithersError("WORKFLOW_ROOT_REQUIRED", "The build function must return a <Workflow> element");
  }
  const { name } = node.props;
  if (name !== undefined && (typeof name !== "string" || name === "")) {
    throw new SmithersError("INVALID_PROP", "<Workflow name> must be a non-empty string");
  }
  state.name = name ?? "workflow";
  for (const key of HANDLERS) {
    const handler = node.props[key];
    if (handler == null) continue;
    if (!isHandler(handler)) {
      throw new SmithersError(
        "INVALID_PROP",
        `<Workflow ${key}> must be a shell command (string), a function, or { command | script, shell?, cwd?, env? }`,
      );
    }
    state.handlers[key] = handler;
  }
  return { kind: "sequence", children: renderChildren(node.props.children, state, []) };
}

/**
 * @param {unknown} children
 * @param {any} state
 * @param {{ id: string, iteration: number }[]} scope enclosing loops, outermost first
 */
function renderChildren(children, state, scope) {
  const out = [];
  expand(children, state, scope, out);
  return out;
}

function expand(node, state, scope, out) {
  // Strings and numbers are ignored, as Smithers' reconciler drops text in the plan.
  if (node === null || node === undefined || typeof node === "boolean") return;
  if (typeof node === "string" || typeof node === "number") return;
  if (Array.isArray(node)) {
    for (const child of node) expand(child, state, scope, out);
    return;
  }
  if (!isElement(node)) {
    throw new SmithersError("INVALID_ELEMENT", `Cannot render ${describe(node)} inside a workflow`);
  }
  const { type, props } = node;
  if (type === Fragment) return expand(props.children, state, scope, out);
  if (typeof type === "function") {
    const tag = type.__smithersTag;
    if (tag === undefined) return expand(type(props), state, scope, out);
    if (BUILTINS.get(tag) !== type) {
      throw new SmithersError(
        "UNKNOWN_COMPONENT",
        `<${type.name}> comes from another copy of smithers-rs; import components from one place`,
      );
    }
    const planNode = RENDERERS[tag](props, state, scope);
    if (planNode) out.push(planNode);
    return;
  }
  const name = typeof type === "string" ? type : describe(type);
  const hint = type === undefined ? " (is it imported from the right module?)" : "";
  throw new SmithersError("UNKNOWN_COMPONENT", `Unknown component <${name}> in a workflow${hint}`, { component: name });
}

const RENDERERS = {
  workflow() {
    throw new SmithersError("WORKFLOW_ROOT_REQUIRED", "<Workflow> must be the root element, not nested");
  },

  sequence(props, state, scope) {
    if (props.skipIf) return null;
    return { kind: "sequence", children: renderChildren(props.children, state, scope) };
  },

  parallel(props, state, scope) {
    if (props.skipIf) return null;
    const node = { kind: "parallel", children: renderChildren(props.children, state, scope) };
    if (props.maxConcurrency != null) {
      node.maxConcurrency = positiveInt(props.maxConcurrency, "<Parallel maxConcurrency>");
    }
    return node;
  },

  branch(props, state, scope) {
    const chosen = props.if ? props.then : props.else;
    return { kind: "group", children: renderChildren(chosen, state, scope) };
  },

  loop(props, state, scope) {
    if (props.skipIf) return null;
    const { id } = props;
    if (typeof id !== "string" || id === "") {
      throw new SmithersError("LOOP_ID_REQUIRED", "<Loop> needs an id");
    }
    if (state.loopIds.has(id)) throw new SmithersError("DUPLICATE_ID", `Duplicate loop id "${id}"`, { id });
    state.loopIds.add(id);
    const until = props.until ?? false;
    if (typeof until !== "boolean") {
      throw new SmithersError("INVALID_PROP", `<Loop id="${id}"> until must be a boolean`);
    }
    const onMaxReached = oneOf(props.onMaxReached ?? "return-last", ON_MAX_REACHED, `<Loop id="${id}"> onMaxReached`);
    const iteration = state.loops[id] ?? 0;
    return {
      kind: "loop",
      id,
      until,
      maxIterations: positiveInt(props.maxIterations ?? 5, `<Loop id="${id}"> maxIterations`),
      onMaxReached,
      children: renderChildren(props.children, state, [...scope, { id, iteration }]),
    };
  },

  task(props, state, scope) {
    const node = taskBase("Task", props, state, scope);
    if (props.agent !== undefined) {
      throw new SmithersError(
        "AGENT_TASKS_UNSUPPORTED",
        "Agent tasks (LLM calls) are not supported yet by smithers-rs; use a compute function or a static value",
        { id: node.id },
      );
    }
    const body = props.children;
    if (props.workflow != null) {
      if (props.command != null || props.script != null || body !== undefined) {
        throw new SmithersError("INVALID_PROP", `<Task id="${node.id}"> runs a sub-workflow; it takes no command or children`, { id: node.id });
      }
      if (typeof props.workflow !== "string" || props.workflow === "") {
        throw new SmithersError("INVALID_PROP", `<Task id="${node.id}"> workflow must be the path of a workflow file`, { id: node.id });
      }
      const input = props.input ?? {};
      if (typeof input !== "object" && typeof input !== "function") {
        throw new SmithersError("INVALID_PROP", `<Task id="${node.id}"> input must be an object or a function of ctx`, { id: node.id });
      }
      node.body = { type: "compute" };
      state.computeFns.set(node.id, { subWorkflow: { path: resolvePath(state.baseDir, props.workflow), input } });
    } else if (props.command != null || props.script != null) {
      node.body = commandBody(node.id, props, state);
      if (body !== undefined) {
        throw new SmithersError("INVALID_PROP", `<Task id="${node.id}"> has a command; it takes no children`, { id: node.id });
      }
    } else if (typeof body === "function") {
      node.body = { type: "compute" };
      state.computeFns.set(node.id, body);
    } else if (body !== undefined) {
      if (isElement(body)) {
        throw new SmithersError("INVALID_PROP", `<Task id="${node.id}"> children must be a function or a value, not an element`);
      }
      node.body = { type: "static", value: body };
    } else {
      throw new SmithersError(
        "TASK_BODY_REQUIRED",
        `<Task id="${node.id}"> needs a body: a compute function or a static value as children`,
        { id: node.id },
      );
    }
    if (props.needsApproval) {
      node.approval = {
        mode: "gate",
        onDeny: "fail",
        request: { title: props.label ?? props.id, summary: null },
      };
    }
    if (props.approval != null) {
      if (props.needsApproval) {
        throw new SmithersError(
          "INVALID_PROP",
          `<Task id="${node.id}">: needsApproval asks before the task runs, approval={{…}} reviews it after; pick one`,
          { id: node.id },
        );
      }
      node.review = reviewSpec(node.id, props.approval);
    }
    if (props.skipIf) node.skip = true;
    if (props.retries != null) node.retries = nonNegativeInt(props.retries, `<Task id="${node.id}"> retries`);
    if (props.timeoutMs != null) node.timeoutMs = positiveInt(props.timeoutMs, `<Task id="${node.id}"> timeoutMs`);
    if (props.continueOnFail) node.continueOnFail = true;
    if (props.label != null) node.label = String(props.label);
    if (props.meta != null) node.meta = props.meta;
    return node;
  },

  approval(props, state, scope) {
    if (props.skipIf) return null; // Smithers: a skipped <Approval> is no node at all
    const node = taskBase("Approval", props, state, scope);
    const mode = APPROVAL_MODES[props.mode ?? "approve"];
    if (!mode) {
      throw new SmithersError("INVALID_PROP", `<Approval id="${node.id}"> mode must be approve, select or rank`);
    }
    const onDeny = oneOf(props.onDeny ?? "fail", ON_DENY, `<Approval id="${node.id}"> onDeny`);
    const { request } = props;
    if (typeof request?.title !== "string") {
      throw new SmithersError("INVALID_PROP", `<Approval id="${node.id}"> needs request={{ title: "…" }}`);
    }
    // Like Smithers' extractor: options without a key or label are dropped.
    const options = Array.isArray(props.options)
      ? props.options
          .filter((o) => o && o.key && o.label)
          .map((o) => (o.summary == null ? { key: o.key, label: o.label } : { key: o.key, label: o.label, summary: o.summary }))
      : undefined;
    if (mode !== "decision" && !options?.length) {
      throw new SmithersError(
        "APPROVAL_OPTIONS_REQUIRED",
        `<Approval id="${node.id}" mode="${props.mode}"> needs options`,
        { id: node.id },
      );
    }
    node.body = { type: "approval" };
    node.approval = {
      mode,
      onDeny,
      request: { title: request.title, summary: request.summary ?? null, metadata: request.metadata ?? null },
    };
    if (options) node.approval.options = options;
    if (props.allowedUsers) node.approval.allowedUsers = props.allowedUsers;
    if (props.allowedScopes) node.approval.allowedScopes = props.allowedScopes;
    if (props.input != null) node.approval.input = nameList(props.input, `<Approval id="${node.id}"> input`);
    if (props.required != null) node.approval.required = nameList(props.required, `<Approval id="${node.id}"> required`);
    if (props.continueOnFail) node.continueOnFail = true;
    node.label = props.label ?? request.title;
    if (props.meta != null) node.meta = props.meta;
    return node;
  },
};

/** Fields shared by <Task> and <Approval>: id (+ loop scope), iteration, output, dependsOn. */
function taskBase(component, props, state, scope) {
  if (typeof props.id !== "string" || props.id === "") {
    throw new SmithersError("TASK_ID_REQUIRED", `<${component}> needs an id`);
  }
  if (props.output == null) {
    throw new SmithersError("TASK_MISSING_OUTPUT", `<${component} id="${props.id}"> needs an output schema`, {
      id: props.id,
    });
  }
  // Smithers scopes ids by the OUTER loops only: id@@outer=0,inner=… for nested loops.
  const outer = scope.slice(0, -1);
  const id = outer.length ? `${props.id}@@${outer.map((l) => `${l.id}=${l.iteration}`).join(",")}` : props.id;
  if (state.ids.has(id)) throw new SmithersError("DUPLICATE_ID", `Duplicate node id "${id}"`, { id });
  state.ids.add(id);

  const node = {
    kind: "task",
    id,
    iteration: scope.length ? scope[scope.length - 1].iteration : 0,
    output: resolveOutputKey(state.workflow, props.output, `<${component} id="${props.id}"> output`),
    body: null,
  };
  const { dependsOn: deps = [], needs = {} } = props;
  if (!Array.isArray(deps) || typeof needs !== "object" || needs === null) {
    throw new SmithersError("INVALID_PROP", `<${component} id="${props.id}">: dependsOn must be an array, needs an object`);
  }
  const dependsOn = [...deps, ...Object.values(needs)];
  if (dependsOn.length) node.dependsOn = [...new Set(dependsOn)];
  return node;
}

/** `command` / `script` on a <Task>: run by the core as a child process. */
function commandBody(id, props, state) {
  const where = `<Task id="${id}">`;
  if ((props.command != null) === (props.script != null)) {
    throw new SmithersError("INVALID_PROP", `${where} needs exactly one of command and script`, { id });
  }
  const text = props.command ?? props.script;
  if (typeof text !== "string" || text.trim() === "") {
    throw new SmithersError("INVALID_PROP", `${where} ${props.command != null ? "command" : "script"} must be a non-empty string`, { id });
  }
  const body = { type: "command", [props.command != null ? "command" : "script"]: text };
  body.cwd = resolvePath(state.baseDir, props.cwd ?? ".");
  if (props.shell != null) body.shell = String(props.shell);
  if (props.env != null) {
    if (typeof props.env !== "object") throw new SmithersError("INVALID_PROP", `${where} env must be an object`, { id });
    body.env = Object.fromEntries(Object.entries(props.env).map(([k, v]) => [k, String(v)]));
  }
  if (props.parse != null) body.parse = oneOf(props.parse, ["json", "text"], `${where} parse`);
  if (props.envTemplates != null) body.envTemplates = envTemplates(props.envTemplates, where, id);
  return body;
}

/**
 * `envTemplates={[["NAME", "${HOME}/x"], …]}`: variables set before `env`, in order, each
 * value with its `${VAR}` references expanded when the task runs (templates.js).
 */
function envTemplates(value, where, id) {
  const ok = Array.isArray(value) && value.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string");
  if (!ok) throw new SmithersError("INVALID_PROP", `${where} envTemplates must be [name, value] pairs of strings`, { id });
  return value;
}

/** approval={{ prompt, input, required, rewindTo }} on a <Task>: review after the task ran. */
function reviewSpec(id, approval) {
  const where = `<Task id="${id}"> approval`;
  if (approval === true) return {};
  if (typeof approval !== "object") {
    throw new SmithersError("INVALID_PROP", `${where} must be an object {prompt, input, required}`, { id });
  }
  const spec = {};
  if (approval.prompt != null) spec.prompt = String(approval.prompt);
  if (approval.input != null) spec.input = nameList(approval.input, `${where}.input`);
  if (approval.required != null) spec.required = nameList(approval.required, `${where}.required`);
  if (approval.allowedUsers != null) spec.allowedUsers = nameList(approval.allowedUsers, `${where}.allowedUsers`);
  if (approval.allowedScopes != null) spec.allowedScopes = nameList(approval.allowedScopes, `${where}.allowedScopes`);
  if (approval.rewindTo != null) {
    // Where a push-back restarts: this task or one it depends on (the core checks which).
    if (typeof approval.rewindTo !== "string" || approval.rewindTo === "") {
      throw new SmithersError("INVALID_PROP", `${where}.rewindTo must be the id of this task or of one it depends on`, { id });
    }
    spec.rewindTo = approval.rewindTo;
  }
  // required ⊆ input and the names themselves are checked by the core (REQUIRED_NOT_IN_INPUT,
  // INVALID_INPUT_NAME) before anything is written.
  return spec;
}

function nameList(value, what) {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) {
    throw new SmithersError("INVALID_PROP", `${what} must be an array of names`);
  }
  return value;
}

function positiveInt(value, what) {
  if (!Number.isInteger(value) || value < 1) throw new SmithersError("INVALID_PROP", `${what} must be a positive integer`);
  return value;
}

function nonNegativeInt(value, what) {
  if (!Number.isInteger(value) || value < 0) throw new SmithersError("INVALID_PROP", `${what} must be an integer >= 0`);
  return value;
}

function oneOf(value, allowed, what) {
  if (!allowed.includes(value)) {
    throw new SmithersError("INVALID_PROP", `${what} must be one of ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
  }
  return value;
}

function describe(value) {
  if (typeof value === "function") return value.name || "anonymous function";
  if (typeof value === "symbol") return value.toString();
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : JSON.stringify(value);
}
