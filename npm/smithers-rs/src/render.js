// Render a workflow: build a ctx from the core's snapshot, call `workflow.build(ctx)`,
// and turn the element tree into the graph descriptor of ARCHITECTURE.md.
import { dirname, resolve as resolvePath } from "node:path";
import { BUILTINS, setCurrentCtx } from "./components.js";
import { CONTRACT } from "./contract.js";
import { SmithersError } from "./errors.js";
import { Fragment, isElement } from "./jsx-runtime.js";
import { agentLabel } from "./agents/task.js";

const { onDeny: ON_DENY, onMaxReached: ON_MAX_REACHED } = CONTRACT;
const APPROVAL_MODES = { approve: "decision", select: "select", rank: "rank" };
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

// The props each built-in honours. Any other prop is refused (UNSUPPORTED_PROP, naming it):
// accepted and ignored, it would silently behave otherwise than the author meant.
const TASK_LIKE = ["id", "output", "dependsOn", "needs", "skipIf", "continueOnFail", "label", "meta"];
const PROPS = {
  workflow: ["name", "onWait", "onSuccess", "onFailure", "onExit", "children"],
  sequence: ["skipIf", "children"],
  // Smithers' Parallel id names the group; it has no effect on how the children run.
  parallel: ["id", "maxConcurrency", "skipIf", "children"],
  "merge-queue": ["id", "maxConcurrency", "skipIf", "children"],
  worktree: ["id", "path", "branch", "baseBranch", "skipIf", "children"],
  branch: ["if", "then", "else", "skipIf"],
  loop: ["id", "until", "maxIterations", "onMaxReached", "skipIf", "children"],
  task: [
    ...TASK_LIKE, "children", "agent", "fallbackAgent", "outputSchema", "deps", "needsApproval", "async", "approval", "retries", "noRetry", "timeoutMs",
    "command", "script", "shell", "cwd", "env", "envTemplates", "parse", "workflow", "input",
  ],
  approval: [
    ...TASK_LIKE, "request", "mode", "options", "onDeny", "allowedUsers", "allowedScopes", "autoApprove", "async",
    "input", "required", "timeoutMs", "deadline", "onTimeout", "remind", "escalate", "quorum",
  ],
  human: [...TASK_LIKE, "prompt", "maxAttempts", "async", "timeoutMs", "deadline", "onTimeout", "remind", "escalate"],
  // Smithers' <Timer>: no output, exactly one of duration and until.
  timer: ["id", "key", "duration", "until", "skipIf", "dependsOn", "needs", "label", "meta"],
  // Smithers' <WaitForEvent>: the payload sent to the run (smithers signal) is its output.
  "wait-for-event": [...TASK_LIKE, "event", "correlationId", "timeoutMs", "onTimeout", "async"],
};
const ALLOWED = Object.fromEntries(Object.entries(PROPS).map(([tag, names]) => [tag, new Set(names)]));
const COMPONENT_NAMES = {
  workflow: "Workflow", sequence: "Sequence", parallel: "Parallel", branch: "Branch", loop: "Loop",
  task: "Task", approval: "Approval", human: "HumanTask", "merge-queue": "MergeQueue", worktree: "Worktree", timer: "Timer",
  "wait-for-event": "WaitForEvent",
};
/** Smithers props smithers-rs does not honour (yet), and what to do instead. */
const NOT_HONOURED = {
  retryPolicy: "retry backoff is not supported yet: retries run again at once (use retries)",
  cache: "output caching is not supported yet",
  heartbeatTimeoutMs: "task heartbeats are not supported yet",
  heartbeatTimeout: "task heartbeats are not supported yet",
  outputSchema: "is not supported (except on agent tasks, which pass it to the agent): the schema is the one createSmithers registered for the output key",
  continueAsNewEvery: "is not supported yet",
  allowTools: "is not supported: give the agent its tools (a CLI agent its allowedTools)",
  scorers: "scoring agent outputs is not supported yet",
  memory: "agent memory is not supported yet",
  hijack: "hijacking an agent session is not supported",
  onHijackExit: "hijacking an agent session is not supported",
};
/** The same, where one component differs from the rest. */
const NOT_HONOURED_ON = {
  approval: {
    retries: "an approval has no body to run again",
    children: "an <Approval> renders no children: put what follows the decision after it",
  },
  timer: { every: "recurring timers are not supported (nor in Smithers: \"phase 2\")" },
  "wait-for-event": { outputSchema: "the payload is checked against the output's schema; a second schema is not supported" },
};

/**
 * Refuses props a component does not honour, with a stable code naming the prop.
 * `undefined` and `null` values are passed over: they say nothing.
 * @param {string} component display name, e.g. "Approval"
 * @param {Record<string, unknown>} props
 * @param {Set<string>} allowed
 * @param {Record<string, string>} [notHonoured] component-specific reasons
 */
export function checkProps(component, props, allowed, notHonoured = {}) {
  for (const name in props) {
    if (allowed.has(name) || props[name] === undefined || props[name] === null) continue;
    const why = notHonoured[name] ?? NOT_HONOURED[name];
    const id = typeof props.id === "string" ? ` id="${props.id}"` : "";
    throw new SmithersError(
      "UNSUPPORTED_PROP",
      `<${component}${id}> ${name}: ${why ?? `is not a prop of <${component}>`}`,
      { component, prop: name, ...(id ? { id: props.id } : {}) },
    );
  }
}

/**
 * @typedef {{ id: string, path: string, branch?: string, baseBranch?: string }} WorktreeSpec
 * @typedef {{ table: string, nodeId: string, iteration: number, value: Record<string, unknown> }} OutputRow
 * @typedef {{ runId: string, input?: unknown, loops?: Record<string, number>,
 *   nodeLoops?: Record<string, string>, outputs?: OutputRow[], workflowPath?: string | null,
 *   index?: ReturnType<typeof outputIndex>, memo?: RenderMemo }} Snapshot (`index`: the rows, indexed already; then `outputs` is not read)
 * @typedef {{ tasks: Map<string, any>, slots: Map<string, any[]>, deps: string[] | null, depsOrder: string[] | null, depsAt: Map<string, number> | null,
 *   depsEntries: ({ table: unknown, entry: any } | undefined)[] | null, depsIndex: unknown, renders: number }} RenderMemo what renders leave
 *   for the next of the same run (`newRenderMemo()`; the driver keeps one per run): see `SEALED`
 */

/**
 * The returned `ctx` stays live: compute bodies close over it and may run long after this
 * render (the core re-renders only when a read output changed). The driver should call
 * `addOutput(row)` for each output the core reports, so those bodies read fresh rows.
 * @param {any} workflow the value returned by `smithers(build)`
 * @param {Snapshot} snapshot
 * @returns {{ graph: any, computeFns: { get(nodeId: string): any, keys(): Iterable<string>, size: number }, ctx: any, addOutput: (row: OutputRow) => void,
 *   dropOutput: (ref: { table: string, nodeId: string, iteration: number }) => void,
 *   handlers: { onWait?: any, onSuccess?: any, onFailure?: any, onExit?: any }, baseDir: string,
 *   worktrees: Map<string, WorktreeSpec> }}
 */
export function renderWorkflow(workflow, snapshot) {
  if (!workflow?.__smithersWorkflow) {
    throw new SmithersError("INVALID_WORKFLOW", "renderWorkflow: not a workflow (expected smithers((ctx) => …))");
  }
  // `order`: the ids the last render read, in the order it read them (`at`: id -> position);
  // `same` stays true while this render reads the same ones in the same order, counted by
  // `read` (then its sorted deps are the last's), and no set of the ids it read is built.
  // `nodes`: the ids read, once this render has read another id or another order.
  const order = snapshot.memo?.depsOrder ?? null;
  const at = snapshot.memo?.depsAt ?? null;
  const same = order !== null && at !== null;
  const deps = { nodes: same ? null : new Set(), read: 0, all: false, order, at, same, entries: same ? readEntries(snapshot.memo, snapshot.index) : null };
  const { ctx, addOutput, dropOutput } = createCtx(workflow, snapshot, deps);
  const state = {
    workflow,
    ctx,
    loops: snapshot.loops ?? {},
    ids: new Set(),
    loopIds: new Set(),
    computeFns: null,
    name: "workflow",
    handlers: {},
    // Command tasks run in the workflow file's directory unless they say otherwise; inside a
    // <Worktree>, in the worktree (baseDir), while rootDir stays the workflow's.
    rootDir: snapshot.workflowPath ? dirname(snapshot.workflowPath) : (workflow.baseDir ?? process.cwd()),
    baseDir: null,
    /** The <Worktree> being rendered, and node id -> the worktree its task runs in. */
    worktree: null,
    worktrees: new Map(),
    worktreeIds: new Set(),
    /** Sealed task nodes of earlier renders, by the element's id (see SEALED). */
    memo: snapshot.memo ? snapshot.memo.tasks : null,
    /** The memo's entries by place: path of the children's container -> entry per position. */
    slots: snapshot.memo ? snapshot.memo.slots : null,
    /** The container whose slots were looked up last, and its slots. */
    slotPath: null,
    slotArray: null,
    memoRender: snapshot.memo ? ++snapshot.memo.renders : 0,
    reused: 0,
  };
  state.computeFns = new ComputeFns(state.memo, state.memoRender);
  state.baseDir = state.rootDir;
  const prevCtx = setCurrentCtx(ctx);
  const prevState = rendering;
  rendering = state;
  let root;
  try {
    const tree = workflow.build(ctx);
    if (typeof tree?.then === "function") {
      throw new SmithersError("INVALID_WORKFLOW", "smithers((ctx) => …) must return JSX synchronously, not a promise");
    }
    root = renderRoot(tree, state);
  } finally {
    setCurrentCtx(prevCtx);
    rendering = prevState;
  }
  const graph = {
    version: 1,
    workflow: { name: state.name },
    schemas: workflow.implicitSchemas?.size
      ? { ...workflow.jsonSchemas, ...Object.fromEntries(workflow.implicitSchemas) }
      : workflow.jsonSchemas,
    renderDeps: deps.all ? "*" : sortedDeps(deps, snapshot.memo),
    root,
  };
  if (snapshot.memo) {
    snapshot.memo.deps = Array.isArray(graph.renderDeps) ? graph.renderDeps : null;
    // Forget the nodes of elements no longer rendered, once they are half of what is kept.
    const { tasks } = snapshot.memo;
    if (tasks.size > 2 * (state.ids.size + state.reused) + 64) {
      for (const [id, entry] of tasks) {
        if (entry.render === state.memoRender) continue;
        entry.dead = true;
        tasks.delete(id);
      }
    }
  }
  return {
    graph,
    computeFns: state.computeFns,
    ctx,
    addOutput,
    dropOutput,
    handlers: state.handlers,
    baseDir: state.rootDir,
    worktrees: state.worktrees,
  };
}

/**
 * Nodes made of nothing but the props' primitives (and of the schema key their `output` names):
 * no value of the workflow's is in them, so nothing the workflow does later can change them. A
 * render reuses one for an element whose props are the same as the last render's, and the
 * driver's `sameGraph` takes one found again at its place for equal without walking it. That
 * is what keeps a re-render of N unchanged tasks cheap (issue 13: a sequence whose render
 * reads the previous output renders N times).
 */
export const SEALED = {
  /** @param {unknown} value */
  has: (value) => typeof value === "object" && value !== null && /** @type {any} */ (value)[SEAL] === true,
  /** @param {object} value */
  add: (value) => {
    Object.defineProperty(value, SEAL, { value: true });
  },
};

/**
 * The mark of a sealed object: a property no JSON, no `for…in`, no structured clone and no
 * deep-equal sees (a symbol, not enumerable), read as fast as any property (the driver's
 * `sameGraph` reads it for every node of every render).
 */
export const SEAL = Symbol("smithers.sealed");

/** @returns {RenderMemo} */
export const newRenderMemo = () => ({ tasks: new Map(), slots: new Map(), deps: null, depsOrder: null, depsAt: null, depsEntries: null, depsIndex: null, renders: 0 });

/**
 * What the last renders' reads found, by their place in `depsOrder` (the i-th id read): the
 * index entry of that node in that table. A render that reads the same ids in the same order
 * takes the entry from there instead of hashing the id again (issue 13: a render that reads N
 * outputs, N times). An entry, once an index has it, stays that node's for good (rows come
 * and go inside it), so a place keeps it while the order and the index are the same; a read
 * that found nothing is looked up again next time. Null without a driver's index.
 */
function readEntries(memo, index) {
  if (index === undefined) return null;
  if (memo.depsEntries === null || memo.depsIndex !== index) {
    memo.depsEntries = [];
    memo.depsIndex = index;
  }
  return memo.depsEntries;
}

/** Records that a render read node `nodeId`'s outputs (see `deps` in renderWorkflow). */
function readDep(deps, nodeId) {
  if (deps.same) {
    const { order, read } = deps;
    if (read < order.length && order[read] === nodeId) {
      deps.read = read + 1;
      return;
    }
    // Read already in this render: nothing new.
    if ((deps.at.get(nodeId) ?? read) < read) return;
    deps.same = false;
    deps.nodes = new Set(read === order.length ? order : order.slice(0, read));
  }
  deps.nodes.add(nodeId);
}

/**
 * The sorted render deps; the last render's array when this render read the same ids in the
 * same order (the usual case: the same function over the same rows), without sorting or
 * looking them up again.
 */
function sortedDeps(deps, memo) {
  const last = memo?.deps;
  if (last && deps.same && deps.order.length === deps.read) return last;
  // The ids read, without repeats, in the order they were read.
  const ids = deps.same ? deps.order.slice(0, deps.read) : [...deps.nodes];
  if (memo) {
    memo.depsOrder = ids;
    memo.depsEntries = null;
    memo.depsAt = new Map();
    for (let i = 0; i < ids.length; i++) memo.depsAt.set(ids[i], i);
  }
  if (last && last.length === ids.length) {
    const nodes = memo?.depsAt ?? new Set(ids);
    if (last.every((id) => nodes.has(id))) return last;
  }
  const sorted = [...ids].sort();
  SEALED.add(sorted);
  return sorted;
}

const isPrimitive = (v) => v === null || (typeof v !== "object" && typeof v !== "function");

/**
 * Whether a <Task>'s node can be sealed: a compute, static or command task whose props are
 * primitives, arrays of primitives (`dependsOn`), its output schema and a function as its
 * body. Agents, `deps` (the body is called at render), sub-workflows and object props
 * (`env`, `approval`, `meta`, …) are rendered every time.
 */
function sealable(props, state) {
  if (state.worktree || props.agent !== undefined || props.fallbackAgent !== undefined || props.deps != null || props.workflow != null) return false;
  for (const key in props) {
    const v = props[key];
    if (isPrimitive(v) || key === "output" || (key === "children" && typeof v === "function")) continue;
    if (Array.isArray(v) && v.every(isPrimitive)) continue;
    return false;
  }
  return true;
}

/**
 * Same props: the same keys and values; arrays element by element; any two body functions.
 * `bKeys`: how many keys `b` has, when known (then `b`'s keys are not enumerated).
 */
function sameProps(a, b, bKeys) {
  let keys = 0;
  for (const key in a) {
    const x = a[key];
    const y = b[key];
    keys += 1;
    if (x === y || (key === "children" && typeof x === "function" && typeof y === "function")) continue;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  if (bKeys !== undefined) return keys === bKeys;
  for (const _ in b) keys -= 1;
  return keys === 0;
}

/** Where a task is rendered, as far as its node depends on it: its loop's iteration, the directory. */
const placeOf = (scope, state) => (scope.length ? `${scope[0].id}=${scope[0].iteration}|${state.baseDir}` : state.baseDir);

/**
 * Whether this render has a node with this id: one it built (`ids`), or one it took from the
 * memo (not copied into `ids`: a render of N unchanged tasks builds no set of N ids).
 */
const hasId = (state, id) => state.ids.has(id) || (state.memo !== null && state.memo.get(id)?.render === state.memoRender);

/**
 * node id -> what the driver runs for a compute task (its function, or a sub-workflow): those
 * this render built, and the bodies of the sealed nodes it took from the memo (the element's
 * function of this render, which closes over this render's ctx).
 */
class ComputeFns {
  constructor(memo, render) {
    this.own = new Map();
    this.memo = memo;
    this.render = render;
  }
  set(id, fn) {
    this.own.set(id, fn);
  }
  get(id) {
    const fn = this.own.get(id);
    if (fn !== undefined || this.memo === null) return fn;
    const entry = this.memo.get(id);
    return entry !== undefined && entry.render === this.render && entry.compute ? entry.props.children : undefined;
  }
  *keys() {
    yield* this.own.keys();
    if (this.memo === null) return;
    for (const [id, entry] of this.memo) if (entry.render === this.render && entry.compute && !this.own.has(id)) yield id;
  }
  get size() {
    let n = 0;
    for (const _ of this.keys()) n += 1;
    return n;
  }
}

/**
 * The memo's entries of the children of the container at `path`, by position (an element's
 * place in its parent's children): looked up once per container while its children render.
 */
function slotsOf(state, path) {
  if (path === state.slotPath) return state.slotArray;
  let slots = state.slots.get(path);
  if (slots === undefined) state.slots.set(path, (slots = []));
  state.slotPath = path;
  state.slotArray = slots;
  return slots;
}

/**
 * The last render's node for this <Task> element, when its props and place are the same
 * (then it is this render's too: its id is claimed and its body registered), else undefined.
 * The entry is looked for at the element's position first (the same element at the same
 * position: no lookup by id), then by id (an element that moved).
 */
function reuseTask(props, state, scope, path, index) {
  if (scope.length > 1) return undefined;
  let entry = slotsOf(state, path)[index];
  // An entry of another id, or one a later entry for its id replaced: look the id up.
  if (entry === undefined || entry.dead || entry.props.id !== props.id) entry = state.memo.get(props.id);
  // Taken already by this render: a duplicate id, which the renderer reports.
  if (entry === undefined || entry.render === state.memoRender || !sameProps(props, entry.props, entry.keys) || entry.place !== placeOf(scope, state)) return undefined;
  if (state.ids.size !== 0 && state.ids.has(props.id)) return undefined;
  entry.props = props;
  entry.render = state.memoRender;
  state.slotArray[index] = entry;
  state.reused += 1;
  return entry.node;
}

/** Keeps a freshly rendered <Task> node for the next render when it is sealable. */
function rememberTask(props, state, scope, node, path, index) {
  // Keyed by node id, which is the element's id outside nested loops (those are not kept).
  if (node === null || scope.length > 1 || !sealable(props, state)) return;
  SEALED.add(node);
  let keys = 0;
  for (const _ in props) keys += 1;
  // `keys`: how many props `props` has, and every later props the entry takes (sameProps).
  const entry = { props, node, keys, place: placeOf(scope, state), render: state.memoRender, compute: node.body.type === "compute", dead: false };
  const replaced = state.memo.get(props.id);
  if (replaced !== undefined) replaced.dead = true;
  state.memo.set(props.id, entry);
  slotsOf(state, path)[index] = entry;
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

/**
 * The output rows a ctx reads, indexed by table and by table and node. A driver keeps one per
 * run (`snapshot.index`) and adds the rows the core reports, so a render does not index every
 * row of the run again; every ctx built on it stays live.
 * @param {string} runId
 * @param {OutputRow[]} [rows]
 */
export function outputIndex(runId, rows = []) {
  /** table -> rows; table -> nodeId -> { rows, byIteration } */
  const byTable = new Map();
  const byNode = new Map();
  // A row replaced or withdrawn is looked for from the end (lastIndexOf): it is most often the
  // one added last (the driver puts a result's row, then the core's step reports it again),
  // so a run of N outputs does not scan N rows per output.
  const add = (out) => {
    const iteration = out.iteration ?? 0;
    const row = { runId, nodeId: out.nodeId, iteration, ...out.value };
    let nodes = byNode.get(out.table);
    if (!nodes) byNode.set(out.table, (nodes = new Map()));
    let entry = nodes.get(out.nodeId);
    if (!entry) nodes.set(out.nodeId, (entry = { rows: [], byIteration: new Map() }));
    let tableRows = byTable.get(out.table);
    if (!tableRows) byTable.set(out.table, (tableRows = []));
    const old = entry.byIteration.get(iteration);
    if (old) {
      // Upsert, like the output table's primary key (run, node, iteration).
      entry.rows[entry.rows.lastIndexOf(old)] = row;
      tableRows[tableRows.lastIndexOf(old)] = row;
    } else {
      entry.rows.push(row);
      tableRows.push(row);
    }
    entry.byIteration.set(iteration, row);
  };
  // A push-back withdrew this row (its step runs again).
  const drop = (ref) => {
    const entry = byNode.get(ref.table)?.get(ref.nodeId);
    const old = entry?.byIteration.get(ref.iteration ?? 0);
    if (!old) return;
    entry.byIteration.delete(ref.iteration ?? 0);
    entry.rows.splice(entry.rows.lastIndexOf(old), 1);
    const tableRows = byTable.get(ref.table);
    tableRows?.splice(tableRows.lastIndexOf(old), 1);
  };
  // Adds a row and returns what takes it back out (the row it replaced goes back in its
  // place): the driver renders with a result's row before the core has recorded it.
  const put = (out) => {
    const iteration = out.iteration ?? 0;
    const old = byNode.get(out.table)?.get(out.nodeId)?.byIteration.get(iteration);
    add(out);
    return () => {
      if (old === undefined) return drop(out);
      const entry = byNode.get(out.table).get(out.nodeId);
      const now = entry.byIteration.get(iteration);
      const tableRows = byTable.get(out.table);
      entry.rows[entry.rows.lastIndexOf(now)] = old;
      tableRows[tableRows.lastIndexOf(now)] = old;
      entry.byIteration.set(iteration, old);
    };
  };
  for (const out of rows) add(out);
  return { byTable, byNode, add, drop, put };
}

function createCtx(workflow, snapshot, deps) {
  const runId = snapshot.runId;
  const loops = { ...(snapshot.loops ?? {}) };
  // A Map: a lookup that misses (a node outside every loop) is several times cheaper than on an object.
  const loopOf = new Map(Object.entries(snapshot.nodeLoops ?? {}));
  const firstLoop = Object.keys(loops)[0];
  const index = snapshot.index ?? outputIndex(runId, snapshot.outputs);
  const { byTable, byNode, add: addOutput, drop: dropOutput } = index;

  const tableKey = (table) => resolveOutputKey(workflow, table, "ctx");
  // The table a render reads is most often the one it read last: its node map is kept (a
  // table's map, once made, is never replaced), so the usual lookup is one Map.get.
  let lastTable;
  let lastNodes;
  const nodeEntry = (table, nodeId) => {
    if (typeof nodeId !== "string") {
      throw new SmithersError("INVALID_ARGUMENT", "ctx output lookups need a nodeId string");
    }
    // The read the last render made at this place, of the same node in the same table: its
    // entry (readEntries), without readDep or a lookup.
    const { entries } = deps;
    if (entries !== null && deps.same) {
      const { order, read } = deps;
      if (read < order.length && order[read] === nodeId) {
        deps.read = read + 1;
        const found = entries[read];
        if (found !== undefined && found.table === table) return found.entry;
        const entry = lookupEntry(table, nodeId);
        // Only a table of one key whose nodes are indexed: its entry for this node is final.
        if (entry !== undefined && table === lastTable) entries[read] = { table, entry };
        return entry;
      }
    }
    readDep(deps, nodeId);
    return lookupEntry(table, nodeId);
  };
  const lookupEntry = (table, nodeId) => {
    if (table === lastTable) return lastNodes.get(nodeId);
    const keys = outputKeys(workflow, table, "ctx");
    if (keys.length === 1 && byNode.has(keys[0])) {
      lastTable = table;
      lastNodes = byNode.get(keys[0]);
      return lastNodes.get(nodeId);
    }
    if (keys.length === 1) return byNode.get(keys[0])?.get(nodeId);
    // A schema shared by several keys: the node writes to one of them.
    for (const key of keys) {
      const entry = byNode.get(key)?.get(nodeId);
      if (entry) return entry;
    }
    return undefined;
  };
  // A node's default iteration is the current iteration of the loop it belongs to.
  const defaultIteration = (nodeId) => {
    if (loopOf.size === 0) return 0;
    const loopId = loopOf.get(nodeId);
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
    const keys = outputKeys(workflow, table, "ctx");
    deps.all = true;
    return keys.length === 1 ? (byTable.get(keys[0]) ?? []) : keys.flatMap((key) => byTable.get(key) ?? []);
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

/**
 * The output key a table argument names: a string key, `outputs.<key>` (the schema object,
 * or the key's own handle when one schema is registered under several keys), a
 * `tables.<key>` handle, or a table a composite component derives (`implicitTable`). A schema
 * object registered under several keys, passed as itself, names the last of them (as in
 * Smithers); lookups by node id search all of them (`outputKeys`).
 */
function resolveOutputKey(workflow, table, where) {
  const keys = outputKeys(workflow, table, where);
  return keys[keys.length - 1];
}

/** Every key a table argument may name (one, unless a shared schema object is passed). */
function outputKeys(workflow, table, where) {
  let key = table;
  if (typeof table === "object" && table !== null) {
    const entry = workflow.schemaKeys.get(table);
    if (Array.isArray(entry)) return entry;
    if (entry !== undefined) {
      key = entry;
    } else if (table.__smithersTable) {
      key = table.key;
      if (table.schema) registerImplicit(workflow, key, table.schema, where);
    }
  }
  if (typeof key !== "string" || !(Object.hasOwn(workflow.jsonSchemas, key) || workflow.implicitSchemas?.has(key))) {
    const shown = typeof key === "string" ? `"${key}"` : "schema object";
    throw new SmithersError(
      "UNKNOWN_OUTPUT_SCHEMA",
      `${where}: ${shown} is not an output schema registered with createSmithers`,
      { key: typeof key === "string" ? key : null },
    );
  }
  return [key];
}

/**
 * A table a composite component derives from node ids (a <Runbook> step's approval): kept on
 * the workflow, so every later render and ctx lookup knows it, and sent with the graph.
 */
function registerImplicit(workflow, key, schema, where) {
  const existing = Object.hasOwn(workflow.jsonSchemas, key) ? workflow.jsonSchemas[key] : workflow.implicitSchemas?.get(key);
  if (existing !== undefined) {
    if (JSON.stringify(existing) !== JSON.stringify(schema)) {
      throw new SmithersError("OUTPUT_CONFLICT", `${where}: table "${key}" is already registered with another schema`, { key });
    }
    return;
  }
  workflow.implicitSchemas ??= new Map();
  workflow.implicitSchemas.set(key, schema);
}

/** The state of the render in progress (composite components look up schemas in it). */
let rendering = null;

/**
 * The JSON Schema of an output table argument, for a composite component checking what it
 * will write there; only while a workflow renders.
 * @param {unknown} table
 * @param {string} where who asks, for errors
 */
export function outputJsonSchema(table, where) {
  if (rendering === null) {
    throw new SmithersError("CTX_OUTSIDE_RENDER", `${where}: output schemas are known only while a workflow renders`);
  }
  const { workflow } = rendering;
  const key = resolveOutputKey(workflow, table, where);
  return Object.hasOwn(workflow.jsonSchemas, key) ? workflow.jsonSchemas[key] : workflow.implicitSchemas.get(key);
}

/** A table named by a composite component (not by createSmithers), with its JSON Schema. */
export function implicitTable(key, schema) {
  return Object.freeze({ __smithersTable: true, key, schema });
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
  checkProps("Workflow", node.props, ALLOWED.workflow);
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
  return { kind: "sequence", children: renderChildren(node.props.children, state, [], "") };
}

/**
 * @param {unknown} children
 * @param {any} state
 * @param {{ id: string, iteration: number }[]} scope enclosing loops, outermost first
 * @param {string} path where `children` sit in the element tree ("0.2.1"): a loop without an
 *   id is named after it, so its id is the same at every render and after a resume. A
 *   position counts every child written in the JSX, null and false included, so a
 *   conditional sibling (`{ready ? <Task/> : null}`) does not move the loops after it.
 */
function renderChildren(children, state, scope, path) {
  const out = [];
  if (Array.isArray(children)) {
    for (let i = 0; i < children.length; i++) expand(children[i], state, scope, path, i, out);
  } else {
    expand(children, state, scope, path, 0, out);
  }
  return out;
}

/** The path of child `index` of the node at `path`; built only where it is used (containers). */
const at = (path, index) => (path === "" ? `${index}` : `${path}.${index}`);

/** The builtin component `expand` checked last (`BUILTINS.get(tag) === type`). */
let lastBuiltin = null;

function expand(node, state, scope, parentPath, index, out) {
  // Strings and numbers are ignored, as Smithers' reconciler drops text in the plan.
  if (node === null || node === undefined || typeof node === "boolean") return;
  if (typeof node === "string" || typeof node === "number") return;
  if (Array.isArray(node)) {
    const path = at(parentPath, index);
    for (let i = 0; i < node.length; i++) expand(node[i], state, scope, path, i, out);
    return;
  }
  if (!isElement(node)) {
    throw new SmithersError("INVALID_ELEMENT", `Cannot render ${describe(node)} inside a workflow`);
  }
  const { type, props } = node;
  if (type === Fragment) {
    out.push(...renderChildren(props.children, state, scope, at(parentPath, index)));
    return;
  }
  if (typeof type === "function") {
    const tag = type.__smithersTag;
    if (tag === undefined) return expand(type(props), state, scope, parentPath, index, out);
    // The component of the last element checked is the same one most of the time.
    if (type !== lastBuiltin && BUILTINS.get(tag) !== type) {
      throw new SmithersError(
        "UNKNOWN_COMPONENT",
        `<${type.name}> comes from another copy of smithers-rs; import components from one place`,
      );
    }
    lastBuiltin = type;
    if (tag === "task" && state.memo !== null) {
      const reused = typeof props.id === "string" ? reuseTask(props, state, scope, parentPath, index) : undefined;
      if (reused !== undefined) {
        out.push(reused);
        return;
      }
    }
    checkProps(COMPONENT_NAMES[tag], props, ALLOWED[tag], NOT_HONOURED_ON[tag]);
    const planNode = RENDERERS[tag](props, state, scope, parentPath, index);
    if (tag === "task" && state.memo !== null && typeof props.id === "string") rememberTask(props, state, scope, planNode, parentPath, index);
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

  sequence(props, state, scope, path, index) {
    if (props.skipIf) return null;
    return { kind: "sequence", children: renderChildren(props.children, state, scope, at(path, index)) };
  },

  parallel(props, state, scope, path, index) {
    if (props.skipIf) return null;
    const node = { kind: "parallel", children: renderChildren(props.children, state, scope, at(path, index)) };
    if (props.maxConcurrency != null) {
      node.maxConcurrency = positiveInt(props.maxConcurrency, "<Parallel maxConcurrency>");
    }
    return node;
  },

  // Smithers' <MergeQueue>: a parallel group whose tasks run one at a time unless it says more.
  "merge-queue"(props, state, scope, path, index) {
    if (props.skipIf) return null;
    return {
      kind: "parallel",
      maxConcurrency: positiveInt(props.maxConcurrency ?? 1, "<MergeQueue maxConcurrency>"),
      children: renderChildren(props.children, state, scope, at(path, index)),
    };
  },

  // <Worktree path branch baseBranch>: its tasks run in a git worktree at `path` (relative to
  // the workflow's directory), which the driver creates before the first of them runs.
  worktree(props, state, scope, parentPath, index) {
    if (props.skipIf) return null;
    const path = at(parentPath, index);
    const id = props.id ?? `worktree:${path}`;
    const where = `<Worktree id="${id}">`;
    if (typeof id !== "string" || id === "") throw new SmithersError("INVALID_PROP", "<Worktree> id must be a non-empty string");
    if (typeof props.path !== "string" || props.path.trim() === "") {
      throw new SmithersError("INVALID_PROP", `${where} needs a path: the directory of the worktree`, { id });
    }
    for (const key of ["branch", "baseBranch"]) {
      if (props[key] != null && (typeof props[key] !== "string" || props[key].trim() === "")) {
        throw new SmithersError("INVALID_PROP", `${where} ${key} must be a branch name`, { id });
      }
    }
    if (state.worktreeIds.has(id)) throw new SmithersError("DUPLICATE_ID", `Duplicate worktree id "${id}"`, { id });
    state.worktreeIds.add(id);
    const spec = { id, path: resolvePath(state.rootDir, props.path.trim()) };
    if (props.branch != null) spec.branch = props.branch;
    if (props.baseBranch != null) spec.baseBranch = props.baseBranch;
    const outer = { baseDir: state.baseDir, worktree: state.worktree };
    state.baseDir = spec.path;
    state.worktree = spec;
    try {
      return { kind: "group", children: renderChildren(props.children, state, scope, path) };
    } finally {
      Object.assign(state, outer);
    }
  },

  branch(props, state, scope, path, index) {
    if (props.skipIf) return null;
    // then and else keep their own positions, so a loop in either keeps its id.
    const [chosen, side] = props.if ? [props.then, 0] : [props.else, 1];
    return { kind: "group", children: renderChildren(chosen, state, scope, at(at(path, index), side)) };
  },

  loop(props, state, scope, parentPath, index) {
    if (props.skipIf) return null;
    const path = at(parentPath, index);
    // Smithers names a loop without an id after its place in the tree (ralph:<path>).
    const id = props.id ?? `loop:${path}`;
    if (typeof id !== "string" || id === "") {
      throw new SmithersError("INVALID_PROP", "<Loop> id must be a non-empty string");
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
      children: renderChildren(props.children, state, [...scope, { id, iteration }], path),
    };
  },

  task(props, state, scope) {
    let body = props.children;
    let depIds = [];
    const isAgent = props.agent !== undefined || props.fallbackAgent !== undefined;
    if (!isAgent && props.outputSchema != null) checkProps("Task", { id: props.id, outputSchema: props.outputSchema }, new Set(["id"]));
    if (props.deps != null) {
      const resolved = resolveDeps(props, state);
      // As in Smithers: the task appears once every dep has an output.
      if (resolved === null) return null;
      // Waiting on them (a reviewed step's output exists before its review) where the graph
      // has them already; a dep not in this render has its output and nothing to wait for.
      depIds = resolved.nodeIds.filter((id) => hasId(state, id));
      // A function child gets the deps' rows at render; what it returns is the body.
      if (typeof body === "function") body = body(resolved.values);
    } else if (isAgent && typeof body === "function") {
      // An agent's prompt given as a function (Smithers calls it with the deps, here none).
      body = body({});
    }
    const node = taskBase("Task", props, state, scope, depIds);
    if (isAgent) return agentTask(node, props, state, body);
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
      state.computeFns.set(node.id, { subWorkflow: { path: resolvePath(state.rootDir, props.workflow), input } });
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
        // Smithers stores the element itself as the output, which no schema of fields accepts.
        throw new SmithersError(
          "INVALID_PROP",
          `<Task id="${node.id}"> has a prompt (JSX) as its children but no agent: give it agent={…}, or make its children a function or a value`,
          { id: node.id },
        );
      }
      node.body = { type: "static", value: body };
    } else {
      throw new SmithersError(
        "TASK_BODY_REQUIRED",
        `<Task id="${node.id}"> needs a body: a compute function or a static value as children`,
        { id: node.id },
      );
    }
    return taskOptions(node, props);
  },

  approval(props, state, scope) {
    if (props.skipIf) return null; // Smithers: a skipped <Approval> is no node at all
    const node = taskBase("Approval", props, state, scope);
    const mode = APPROVAL_MODES[props.mode ?? "approve"];
    if (!mode) {
      throw new SmithersError("INVALID_PROP", `<Approval id="${node.id}"> mode must be approve, select or rank`);
    }
    // Smithers' runtime: without onDeny a denial is recorded (approved: false) and the run goes on.
    const onDeny = oneOf(props.onDeny ?? "continue", ON_DENY, `<Approval id="${node.id}"> onDeny`);
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
    if (asyncProp(props, `<Approval id="${node.id}">`)) node.approval.async = true;
    if (props.autoApprove != null) node.approval.autoApprove = autoApproveSpec(node.id, props.autoApprove, state.ctx);
    Object.assign(node.approval, deadlineSpec(props, `<Approval id="${node.id}">`));
    if (props.quorum != null) node.approval.quorum = quorumSpec(props.quorum, `<Approval id="${node.id}"> quorum`);
    if (props.continueOnFail) node.continueOnFail = true;
    node.label = props.label ?? request.title;
    if (props.meta != null) node.meta = props.meta;
    return node;
  },

  timer: timerNode,

  // <WaitForEvent id event output correlationId timeoutMs onTimeout>: a wait the core holds
  // like a <HumanTask> (no thread), answered by a signal — `smithers signal <run> <event>
  // --data '<json>'`, `engine.signal()` — whose payload, valid for the output's schema, is the
  // output. A timeout fails it (Smithers' default, onTimeout "fail").
  "wait-for-event"(props, state, scope) {
    if (props.skipIf) return null;
    const node = taskBase("WaitForEvent", props, state, scope);
    const where = `<WaitForEvent id="${node.id}">`;
    if (typeof props.event !== "string" || props.event === "") {
      throw new SmithersError("INVALID_PROP", `${where} needs an event name`, { id: node.id });
    }
    if (props.correlationId != null && typeof props.correlationId !== "string") {
      throw new SmithersError("INVALID_PROP", `${where} correlationId must be a string`, { id: node.id });
    }
    if (props.onTimeout != null && props.onTimeout !== "fail") {
      throw new SmithersError("UNSUPPORTED_PROP", `${where} onTimeout: only "fail" (the default) is supported; "skip" and "continue" are not yet`, {
        component: "WaitForEvent", prop: "onTimeout", id: node.id,
      });
    }
    const label = props.label == null ? `event:${props.event}` : String(props.label);
    node.body = { type: "approval" };
    node.approval = {
      mode: "human",
      onDeny: "fail",
      request: {
        title: label,
        summary: `Waiting for the event ${props.event}${props.correlationId ? ` (${props.correlationId})` : ""}`,
        metadata: { waitForEvent: { event: props.event, correlationId: props.correlationId ?? null } },
      },
      maxAttempts: 10,
      ...deadlineSpec({ timeoutMs: props.timeoutMs, onTimeout: props.timeoutMs == null ? undefined : "fail" }, where),
    };
    if (asyncProp(props, where)) node.approval.async = true;
    if (props.continueOnFail) node.continueOnFail = true;
    node.label = label;
    if (props.meta != null) node.meta = props.meta;
    return node;
  },

  human(props, state, scope) {
    if (props.skipIf) return null; // as <Approval>: a skipped human task is no node at all
    const node = taskBase("HumanTask", props, state, scope);
    const where = `<HumanTask id="${node.id}">`;
    const { prompt } = props;
    if (typeof prompt !== "string" && typeof prompt !== "number") {
      throw new SmithersError(
        prompt === undefined ? "INVALID_PROP" : "UNSUPPORTED_PROP",
        prompt === undefined
          ? `${where} needs a prompt: what the person is asked to fill in`
          : `${where} prompt: only text is supported as a prompt yet`,
        { component: "HumanTask", prop: "prompt", id: node.id },
      );
    }
    const label = props.label == null ? `human:${props.id}` : String(props.label);
    node.body = { type: "approval" };
    node.approval = {
      mode: "human",
      onDeny: "fail",
      request: { title: label, summary: String(prompt), metadata: null },
      maxAttempts: positiveInt(props.maxAttempts ?? 10, `${where} maxAttempts`),
      ...deadlineSpec(props, where),
    };
    if (asyncProp(props, where)) node.approval.async = true;
    if (props.continueOnFail) node.continueOnFail = true;
    node.label = label;
    if (props.meta != null) node.meta = props.meta;
    return node;
  },
};

/**
 * `<Timer duration|until>` (Smithers'): a node the core holds, with no thread, until its
 * durable timer fires (`timers.rs`); it writes no output. A `duration` counts from when the
 * timer is reached; a past `until` fires at once.
 */
function timerNode(props, state, scope) {
  if (props.skipIf) return null;
  if (typeof props.id !== "string" || props.id === "") throw new SmithersError("TASK_ID_REQUIRED", "<Timer> needs an id");
  const where = `<Timer id="${props.id}">`;
  const hasDuration = typeof props.duration === "string" && props.duration.trim() !== "";
  const hasUntil = props.until != null && String(props.until).trim() !== "";
  if (Number(hasDuration) + Number(hasUntil) !== 1) {
    throw new SmithersError("INVALID_PROP", `${where} requires exactly one of "duration" or "until"`, { id: props.id });
  }
  // taskBase wants an output; a timer has none (the core refuses one).
  const node = taskBase("Timer", { ...props, output: TIMER_OUTPUT }, state, scope);
  node.body = hasDuration
    ? { type: "timer", durationMs: parseDuration(props.duration, `${where} duration`) }
    : { type: "timer", untilMs: parseTime(props.until, `${where} until`) };
  node.label = props.label == null ? `timer:${props.id}` : String(props.label);
  if (props.meta != null) node.meta = props.meta;
  return node;
}

/** Stands in for the output taskBase asks of every node; never reaches the graph. */
const TIMER_OUTPUT = Symbol("timer");
const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "2m", "1.5h", "7d" (a bare number is milliseconds), as Smithers parses them. */
export function parseDuration(raw, what) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(raw).trim().toLowerCase());
  const ms = match ? Math.floor(Number(match[1]) * DURATION_UNITS[match[2] ?? "ms"]) : NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new SmithersError("INVALID_PROP", `${what} must be a duration like 500ms, 30s, 2m, 1h or 7d (got ${JSON.stringify(raw)})`);
  }
  return ms;
}

/** An ISO 8601 time, a Date or epoch milliseconds, as epoch milliseconds. */
function parseTime(raw, what) {
  const ms = raw instanceof Date ? raw.getTime() : typeof raw === "number" ? raw : Date.parse(String(raw));
  if (!Number.isSafeInteger(ms)) throw new SmithersError("INVALID_PROP", `${what} must be an ISO 8601 time or a Date (got ${JSON.stringify(raw)})`);
  return ms;
}

/**
 * `timeoutMs` / `deadline` / `onTimeout` of a gate, a review or a human task: when it passes
 * undecided, the core records `onTimeout` (deny by default, approve, fail) as decided by
 * `system:timeout`.
 * @param {{ timeoutMs?: unknown, deadline?: unknown, onTimeout?: unknown }} props
 */
export function deadlineSpec(props, where) {
  const spec = {};
  if (props.timeoutMs != null) spec.timeoutMs = positiveInt(props.timeoutMs, `${where} timeoutMs`);
  if (props.deadline != null) spec.deadlineMs = parseTime(props.deadline, `${where} deadline`);
  if (props.onTimeout != null) {
    if (spec.timeoutMs === undefined && spec.deadlineMs === undefined) {
      throw new SmithersError("INVALID_PROP", `${where} onTimeout needs timeoutMs or deadline`);
    }
    spec.onTimeout = oneOf(props.onTimeout, ON_TIMEOUT, `${where} onTimeout`);
  }
  if (props.remind != null) {
    const r = props.remind;
    if (typeof r !== "object" || Array.isArray(r) || Object.keys(r).some((k) => k !== "every" && k !== "max")) {
      throw new SmithersError("INVALID_PROP", `${where} remind must be { every, max? }`);
    }
    spec.remind = { everyMs: durationMs(r.every, `${where} remind.every`) };
    if (r.max != null) spec.remind.max = positiveInt(r.max, `${where} remind.max`);
  }
  if (props.escalate != null) {
    if (!Array.isArray(props.escalate)) throw new SmithersError("INVALID_PROP", `${where} escalate must be a list of { after, allowedUsers | allowedScopes }`);
    spec.escalate = props.escalate.map((step, i) => {
      const at = `${where} escalate[${i}]`;
      if (typeof step !== "object" || step === null || Object.keys(step).some((k) => !["after", "allowedUsers", "allowedScopes"].includes(k))) {
        throw new SmithersError("INVALID_PROP", `${at} must be { after, allowedUsers | allowedScopes }`);
      }
      const out = { afterMs: durationMs(step.after, `${at}.after`) };
      if (step.allowedUsers != null) out.allowedUsers = nameList(step.allowedUsers, `${at}.allowedUsers`);
      if (step.allowedScopes != null) out.allowedScopes = nameList(step.allowedScopes, `${at}.allowedScopes`);
      if (!out.allowedUsers?.length && !out.allowedScopes?.length) throw new SmithersError("INVALID_PROP", `${at} needs allowedUsers or allowedScopes`);
      return out;
    });
  }
  return spec;
}

/** A duration as milliseconds: a number, or "15m", "1h", … */
function durationMs(value, what) {
  if (typeof value === "number") return positiveInt(value, what);
  const ms = parseDuration(value, what);
  if (ms < 1) throw new SmithersError("INVALID_PROP", `${what} must be at least 1 ms`);
  return ms;
}
const ON_TIMEOUT = ["deny", "approve", "fail"];

/** The props every kind of <Task> shares: gates, review, retries, timeout, label. */
function taskOptions(node, props) {
  if (props.needsApproval) {
    node.approval = {
      mode: "gate",
      onDeny: "fail",
      request: { title: props.label ?? props.id, summary: null },
    };
    // needsApproval={{ timeoutMs, deadline, onTimeout }}: the gate with a deadline.
    if (typeof props.needsApproval === "object") {
      const where = `<Task id="${node.id}"> needsApproval`;
      for (const key of Object.keys(props.needsApproval)) {
        if (!["timeoutMs", "deadline", "onTimeout", "remind", "escalate"].includes(key)) {
          throw new SmithersError("UNSUPPORTED_PROP", `${where}.${key}: needsApproval takes true or { timeoutMs, deadline, onTimeout, remind, escalate }`, {
            component: "Task", prop: `needsApproval.${key}`, id: node.id,
          });
        }
      }
      Object.assign(node.approval, deadlineSpec(props.needsApproval, where));
    }
    if (asyncProp(props, `<Task id="${node.id}">`)) node.approval.async = true;
  } else if (props.async != null) {
    throw new SmithersError(
      "UNSUPPORTED_PROP",
      `<Task id="${node.id}"> async: only a task that waits for a decision (needsApproval) can wait asynchronously`,
      { component: "Task", prop: "async", id: node.id },
    );
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
  if (props.noRetry) {
    if (node.retries > 0) {
      throw new SmithersError("INVALID_PROP", `<Task id="${node.id}">: noRetry and retries=${node.retries} contradict each other`, { id: node.id });
    }
    node.retries = 0;
  }
  if (props.timeoutMs != null) node.timeoutMs = positiveInt(props.timeoutMs, `<Task id="${node.id}"> timeoutMs`);
  if (props.continueOnFail) node.continueOnFail = true;
  if (props.label != null) node.label = String(props.label);
  if (props.meta != null) node.meta = props.meta;
  return node;
}

/**
 * `<Task agent={…}>prompt</Task>`: the driver calls the agent when the task runs (its
 * prompt is rendered to text then). `agent` may be a list (tried in order on retries), and
 * `fallbackAgent` is one more for the last retries.
 */
function agentTask(node, props, state, prompt) {
  const where = `<Task id="${node.id}">`;
  const agents = [...(Array.isArray(props.agent) ? props.agent : props.agent === undefined ? [] : [props.agent])];
  if (props.fallbackAgent !== undefined) agents.push(props.fallbackAgent);
  if (agents.length === 0 || agents.some((a) => !a || typeof a.generate !== "function")) {
    throw new SmithersError("INVALID_PROP", `${where} agent must be an object with a generate() method (an AgentLike)`, { id: node.id });
  }
  if (props.command != null || props.script != null || props.workflow != null) {
    throw new SmithersError("INVALID_PROP", `${where} has an agent; it takes no command, script or workflow`, { id: node.id });
  }
  if (prompt === undefined || prompt === null || prompt === "") {
    throw new SmithersError("TASK_BODY_REQUIRED", `${where} has an agent but no prompt (its children)`, { id: node.id });
  }
  node.body = { type: "agent", agent: agentLabel(agents[0]) };
  state.computeFns.set(node.id, {
    agentTask: {
      agents,
      prompt,
      outputKey: node.output,
      outputSchema: props.outputSchema ?? state.workflow.schemas?.[node.output],
      rootDir: state.baseDir,
    },
  });
  return taskOptions(node, props);
}

function asyncProp(props, where) {
  if (props.async == null) return false;
  if (typeof props.async !== "boolean") throw new SmithersError("INVALID_PROP", `${where} async must be a boolean`);
  return props.async;
}

const AUTO_APPROVE_KEYS = new Set(["after", "condition", "audit", "revertOn"]);

/**
 * `autoApprove={{ after, condition, audit, revertOn }}` as the core takes it: `condition`
 * and `revertOn` are called with ctx now, at render (as Smithers does); the core applies the
 * rest when the gate is reached.
 */
function autoApproveSpec(id, auto, ctx) {
  const where = `<Approval id="${id}"> autoApprove`;
  if (typeof auto !== "object" || Array.isArray(auto)) {
    throw new SmithersError("INVALID_PROP", `${where} must be an object { after, condition, audit, revertOn }`, { id });
  }
  for (const key of Object.keys(auto)) {
    if (!AUTO_APPROVE_KEYS.has(key) && auto[key] !== undefined) {
      throw new SmithersError("UNSUPPORTED_PROP", `${where}.${key}: autoApprove takes after, condition, audit and revertOn`, {
        component: "Approval", prop: `autoApprove.${key}`, id,
      });
    }
  }
  const spec = {};
  if (auto.after != null) spec.after = nonNegativeInt(auto.after, `${where}.after`);
  spec.audit = auto.audit == null ? true : Boolean(auto.audit);
  for (const [key, field] of [["condition", "conditionMet"], ["revertOn", "revertOnMet"]]) {
    const fn = auto[key];
    if (fn == null) continue;
    if (typeof fn !== "function") {
      throw new SmithersError("INVALID_PROP", `${where}.${key} must be a function of ctx`, { id });
    }
    spec[field] = Boolean(fn(ctx));
  }
  return spec;
}

/**
 * `deps={{ key: outputs.x }}` on a <Task>: the output row of node `needs[key] ?? key` for each
 * key, read through ctx (so the render depends on them), or null while one has none yet.
 */
function resolveDeps(props, state) {
  const { deps, needs = {} } = props;
  if (typeof deps !== "object" || Array.isArray(deps)) {
    throw new SmithersError("INVALID_PROP", `<Task id="${props.id}"> deps must be an object { key: outputs.<table> }`, { id: props.id });
  }
  const values = {};
  const nodeIds = [];
  for (const [key, table] of Object.entries(deps)) {
    const nodeId = needs?.[key] ?? key;
    const row = state.ctx.outputMaybe(table, { nodeId });
    if (row === undefined) return null;
    values[key] = row;
    nodeIds.push(nodeId);
  }
  return { values, nodeIds };
}

/** Fields shared by <Task> and <Approval>: id (+ loop scope), iteration, output, dependsOn. */
function taskBase(component, props, state, scope, extraDependsOn = []) {
  if (typeof props.id !== "string" || props.id === "") {
    throw new SmithersError("TASK_ID_REQUIRED", `<${component}> needs an id`);
  }
  if (props.output == null) {
    throw new SmithersError("TASK_MISSING_OUTPUT", `<${component} id="${props.id}"> needs an output schema`, {
      id: props.id,
    });
  }
  // Smithers scopes ids by the OUTER loops only: id@@outer=0,inner=… for nested loops.
  const id =
    scope.length > 1
      ? `${props.id}@@${scope
          .slice(0, -1)
          .map((l) => `${l.id}=${l.iteration}`)
          .join(",")}`
      : props.id;
  if (hasId(state, id)) throw new SmithersError("DUPLICATE_ID", `Duplicate node id "${id}"`, { id });
  state.ids.add(id);
  if (state.worktree) state.worktrees.set(id, state.worktree);

  const node = {
    kind: "task",
    id,
    iteration: scope.length ? scope[scope.length - 1].iteration : 0,
    output: props.output === TIMER_OUTPUT ? "" : resolveOutputKey(state.workflow, props.output, `<${component} id="${props.id}"> output`),
    body: null,
  };
  if (props.dependsOn === undefined && props.needs === undefined && extraDependsOn.length === 0) return node;
  const { dependsOn: deps = [], needs = {} } = props;
  if (!Array.isArray(deps) || typeof needs !== "object" || needs === null) {
    throw new SmithersError("INVALID_PROP", `<${component} id="${props.id}">: dependsOn must be an array, needs an object`);
  }
  const dependsOn = [...deps, ...Object.values(needs), ...extraDependsOn];
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
  Object.assign(spec, deadlineSpec(approval, where));
  // required ⊆ input and the names themselves are checked by the core (REQUIRED_NOT_IN_INPUT,
  // INVALID_INPUT_NAME) before anything is written.
  return spec;
}

/**
 * `quorum={{ approvals, from, veto }}` (also TOON's `quorum:`): N distinct approvers decide the
 * gate, a veto holder's denial denies it; the core checks the rest (ARCHITECTURE.md).
 */
export function quorumSpec(value, what) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new SmithersError("INVALID_PROP", `${what} must be an object { approvals, from?, veto? }`);
  }
  for (const key of Object.keys(value)) {
    if (!["approvals", "from", "veto"].includes(key)) throw new SmithersError("INVALID_PROP", `${what} has no ${key} (approvals, from, veto)`);
  }
  const spec = { approvals: positiveInt(value.approvals, `${what}.approvals`) };
  if (value.from != null) spec.from = nameList(value.from, `${what}.from`);
  if (value.veto != null) spec.veto = nameList(value.veto, `${what}.veto`);
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
