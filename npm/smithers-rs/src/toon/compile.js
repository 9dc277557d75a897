// TOON workflow document -> workflow object. Each node kind is validated and compiled onto
// the builder's node model (builder.js graphWorkflow), which renders to the element tree of
// our JSX components: a .toon file runs, pauses and resumes exactly like a .tsx one.
//
// Ids: a node's id is its `id`; nodes of an imported workflow (`kind: workflow`) get the
// call's id as a prefix, `<callId>.<innerId>`. Output tables: `output: <name>` names an
// entry of `schemas` (the table key is the name); an inline field block, or an approval
// without `output`, gets the table key derived from the node id (approve-deploy ->
// approveDeploy, SQL table approve_deploy).
import { existsSync, readFileSync } from "node:fs";
import { dirname, extname, resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { TableRegistry, checkTableKey, graphWorkflow, tableKeyFor } from "../builder.js";
import { CONTRACT, fieldProblem, identifierProblem } from "../contract.js";
import { SmithersError } from "../errors.js";
import { registerLoader } from "../loader/install.js";
import { approvalDecisionSchema } from "../schema.js";
import { ExpressionSyntaxError, RESERVED, SCOPE_NAMES, analyse, compileFunction, splitTemplate } from "./expr.js";
import { FieldTypeError, fieldMapToSchema } from "./fields.js";
import { parseToon, pathString, toonError } from "./parse.js";

const TOP_LEVEL_KEYS = ["name", "input", "schemas", "steps", "imports", "onWait", "onFailure"];
const IMPORT_KINDS = ["workflows", "handlers"];
const ID = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/;
const { onDeny: ON_DENY, onMaxReached: ON_MAX_REACHED } = CONTRACT;
/** Extensions tried for an extensionless handler module, and TypeScript sources of .js names. */
const HANDLER_EXTENSIONS = [".ts", ".tsx", ".js", ".mjs", ".jsx", ".mts"];
const TS_SOURCES = { ".js": [".ts", ".tsx"], ".jsx": [".tsx"], ".mjs": [".mts"] };

/** The file a handler path names (`./tools`, `./tools.js` for tools.ts, …), or null. */
function moduleFile(file) {
  if (existsSync(file)) return file;
  for (const ext of HANDLER_EXTENSIONS) if (existsSync(file + ext)) return file + ext;
  const ext = extname(file);
  for (const swap of TS_SOURCES[ext] ?? []) {
    const candidate = file.slice(0, -ext.length) + swap;
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

// ---------------------------------------------------------------- node kinds
//
// `kind:` absent means a step. Each kind lists its keys (anything else is TOON_UNKNOWN_KEY),
// whether it has an id, where its child nodes are, and how it compiles.

const STEP_COMMON_KEYS = [
  "kind", "id", "output", "needs", "retry", "maxAttempts", "timeout", "skipIf", "label", "continueOnFail",
  // command/script steps only
  "cwd", "env", "parse", "shell",
  // review after the step ran (Dagu-style)
  "approval",
];
const COMMAND_ONLY_KEYS = ["cwd", "env", "parse", "shell"];
/** The output of a command step that names none: exit code and stdout/stderr tails. */
const COMMAND_RESULT_FIELDS = { exitCode: "number", stdout: "string", stderr: "string" };

/**
 * What a step does: exactly one of these bodies. Each names the keys that select it (and
 * that it may use) and compiles to `run(env, frame)`. New step bodies are added here.
 */
const STEP_BODIES = {
  run: { keys: ["run"], compile: compileRunBody },
  handler: { keys: ["handler"], compile: compileHandlerBody },
  // Run by the Rust core as a child process: no {…} interpolation (shell ${VAR} stays as is).
  command: { keys: ["command"], compile: (unit, info) => compileCommandBody(unit, info, "command") },
  script: { keys: ["script"], compile: (unit, info) => compileCommandBody(unit, info, "script") },
  prompt: {
    keys: ["prompt", "agent"],
    compile(unit, info) {
      throw unit.at.err(
        "AGENT_TASKS_UNSUPPORTED",
        "agent steps (prompt:) are not supported yet by smithers-rs; use run: or handler:",
        [...info.path, "prompt" in info.value ? "prompt" : "agent"],
      );
    },
  },
};

const NODE_KINDS = {
  step: {
    keys: [...STEP_COMMON_KEYS, ...Object.values(STEP_BODIES).flatMap((b) => b.keys)],
    id: true,
    children: () => [],
    compile: compileStep,
  },
  approval: {
    keys: ["kind", "id", "needs", "request", "onDeny", "output", "allowedUsers", "allowedScopes", "timeoutMs", "deadline", "onTimeout", "quorum"],
    id: true,
    children: () => [],
    compile: compileApproval,
  },
  sequence: { keys: ["kind", "children"], id: false, children: (v) => [["children", v.children, "ordered"]], compile: compileSequence },
  parallel: {
    keys: ["kind", "children", "maxConcurrency"],
    id: false,
    children: (v) => [["children", v.children, "unordered"]],
    compile: compileParallel,
  },
  branch: {
    keys: ["kind", "condition", "then", "else"],
    id: false,
    children: (v) => [
      ["then", v.then, "ordered"],
      ["else", v.else, "ordered"],
    ],
    compile: compileBranch,
  },
  loop: {
    keys: ["kind", "id", "until", "maxIterations", "onMaxReached", "children"],
    id: true,
    children: (v) => [["children", v.children, "ordered"]],
    compile: compileLoop,
  },
  workflow: { keys: ["kind", "id", "use", "input", "with", "needs"], id: true, children: () => [], compile: compileSubWorkflow },
};

// ---------------------------------------------------------------- entry points

/**
 * Loads a .toon workflow file: parses, validates and compiles it (handler modules are
 * imported now, so a missing module or export is a load error).
 * @param {string} path
 */
export async function loadToonWorkflow(path) {
  const file = resolvePath(path);
  if (!existsSync(file)) {
    throw new SmithersError("WORKFLOW_NOT_FOUND", `no such workflow file: ${file}`, { path: file });
  }
  return compileToon(readFileSync(file, "utf8"), { file });
}

/**
 * Compiles TOON source text. `file` is used in messages and to resolve relative imports and
 * handlers (default: a file named workflow.toon in the working directory).
 * @param {string} text
 * @param {{ file?: string }} [options]
 */
export async function compileToon(text, { file: given = "workflow.toon" } = {}) {
  const file = resolvePath(given);
  const program = {
    tables: new TableRegistry(),
    tableOf: new Map(),
    /** node id -> ids of the tasks a need on it waits for (loops, sub-workflows) */
    expansions: new Map(),
    /** compiled task/approval nodes and their dependency ids (expanded at the end) */
    pending: [],
    modules: new Map(),
    parsed: new Map(),
  };
  const parsed = parseFile(program, file, text);
  const unit = await compileUnit(program, parsed, { prefix: "", inputOf: (env) => env.ctx.input, stack: [file] });
  for (const { node, deps } of program.pending) {
    const out = new Set();
    const add = (id) => {
      const inner = program.expansions.get(id);
      if (inner) for (const i of inner) add(i);
      else if (id !== node.id) out.add(id);
    };
    for (const id of deps) add(id);
    node.dependsOn = [...out];
  }
  return graphWorkflow({
    name: unit.name,
    steps: unit.steps,
    handlers: unit.handlers,
    schemas: program.tables.schemas,
    inputSchema: unit.inputSchema,
    tableOf: program.tableOf,
    source: "toon",
    file,
  });
}

function parseFile(program, file, text) {
  let parsed = program.parsed.get(file);
  if (!parsed) {
    parsed = parseToon(text ?? readFileSync(file, "utf8"), file);
    program.parsed.set(file, parsed);
  }
  return { file, ...parsed };
}

// ---------------------------------------------------------------- one file

/**
 * Compiles one file's document: the root workflow, or an imported one at a call site.
 * @param {any} program
 * @param {{ file: string, doc: any, lineOf: (path: (string|number)[]) => number | null }} parsed
 * @param {{ prefix: string, inputOf: (env: any, frame: any) => unknown, stack: string[], extraDeps?: string[] }} call
 */
async function compileUnit(program, { file, doc, lineOf }, call) {
  const where = (path) => ({ file, line: lineOf(path), key: pathString(path) });
  const at = {
    file,
    dir: dirname(file),
    where,
    err: (code, message, path, extra) => toonError(code, message, { ...where(path), ...extra }),
  };
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw toonError("TOON_PARSE", "a workflow file is a block of keys (name, input, steps, …)", { file, line: 1 });
  }
  if ("agents" in doc) throw at.err("AGENT_TASKS_UNSUPPORTED", "agents are not supported yet by smithers-rs", ["agents"]);
  checkKeys(at, doc, [], TOP_LEVEL_KEYS, "a workflow");
  const { name } = doc;
  if (name === undefined) throw at.err("TOON_MISSING_KEY", "a workflow needs a name", ["name"]);
  if (typeof name !== "string" || name.trim() === "") throw at.err("TOON_INVALID_VALUE", "name must be a non-empty string", ["name"]);
  if (!Array.isArray(doc.steps)) {
    throw at.err(doc.steps === undefined ? "TOON_MISSING_KEY" : "TOON_INVALID_VALUE", "a workflow needs steps[N]: a list of nodes", ["steps"]);
  }

  const imports = readImports(at, doc.imports);
  const schemas = readSchemas(at, doc.schemas);
  const inputSchema = readInput(at, doc.input, schemas);
  for (const [key, { schema, path }] of schemas) {
    program.tables.add(key, schema, (message) => at.err("TOON_OUTPUT_CONFLICT", message, path));
  }

  const nodes = collectNodes(at, doc.steps, lineOf);
  const ids = new Map([...nodes.values()].filter((n) => n.id !== undefined).map((n) => [n.id, n]));
  const unit = {
    at,
    program,
    call,
    byPath: nodes,
    ids,
    // Names in expressions: steps, approvals and sub-workflow calls (a call reads as the
    // output of its last top-level step). Loops have no output.
    names: new Set([...ids.values()].filter((n) => n.kindName !== "loop").map((n) => n.id)),
    imports,
    schemas,
    globalId: (local) => call.prefix + local,
    resultOf: new Map(),
    lastLoop: null,
  };
  unit.readName = (env, local) => env.step(unit.resultOf.get(local) ?? unit.globalId(local));

  const steps = [];
  for (let i = 0; i < doc.steps.length; i++) steps.push(await compileNode(unit, ["steps", i], call.extraDeps ?? []));
  const handlers = {};
  for (const key of ["onWait", "onFailure"]) {
    if (doc[key] !== undefined) handlers[key] = expectString(at, doc[key], [key]);
  }
  return { name, steps, inputSchema, handlers };
}

/**
 * Pass 1: every node with its kind, id, document order and position, so needs and
 * references may name any node and are checked before anything compiles.
 * @returns {Map<string, any>} path string -> node info
 */
function collectNodes(at, steps, lineOf) {
  const byPath = new Map();
  const ids = new Map();
  let order = 0;
  const visitList = (list, path, pos, ordered) => {
    if (!Array.isArray(list)) throw at.err("TOON_INVALID_VALUE", "expected a list of nodes (key[N]: followed by - items)", path);
    if (list.length === 0) throw at.err("TOON_INVALID_VALUE", "the list of nodes is empty", path);
    list.forEach((value, i) => visit(value, [...path, i], [...pos, { ordered, index: i }]));
  };
  const visit = (value, path, pos) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw at.err("TOON_INVALID_VALUE", "a node is a block of keys (id, kind, …)", path);
    }
    if (value.kind !== undefined && typeof value.kind !== "string") {
      throw at.err("TOON_INVALID_VALUE", "kind must be a string", [...path, "kind"]);
    }
    const kindName = value.kind ?? "step";
    const kind = NODE_KINDS[kindName];
    if (!kind) {
      const known = Object.keys(NODE_KINDS).filter((k) => k !== "step");
      throw at.err("TOON_UNKNOWN_NODE", `unknown node kind ${JSON.stringify(value.kind)}; expected one of ${known.join(", ")}, or no kind for a step`, [...path, "kind"], { kind: value.kind });
    }
    const info = { value, path, pos, order: order++, kindName, kind, id: undefined };
    byPath.set(pathString(path), info);
    if (kind.id) {
      const { id } = value;
      if (id === undefined) throw at.err("TOON_MISSING_KEY", `${kindName === "step" ? "a step" : `kind: ${kindName}`} needs an id`, [...path, "id"]);
      if (typeof id !== "string" || !ID.test(id)) {
        throw at.err("TOON_INVALID_VALUE", `id ${JSON.stringify(id)} must start with a letter or _ and hold only letters, digits, _ and - (at most 100)`, [...path, "id"]);
      }
      if (SCOPE_NAMES.includes(id) || RESERVED.has(id)) {
        throw at.err("TOON_INVALID_VALUE", `id "${id}" is a name expressions reserve (${SCOPE_NAMES.join(", ")}, JavaScript keywords)`, [...path, "id"]);
      }
      const first = ids.get(id);
      if (first) {
        throw at.err("TOON_DUPLICATE_STEP", `duplicate id "${id}" (first used on line ${lineOf([...first.path, "id"])})`, [...path, "id"], { id });
      }
      ids.set(id, info);
      info.id = id;
    }
    for (const [key, list, how] of kind.children(value)) {
      if (list === undefined) continue;
      const branchSide = { ordered: false, index: key === "else" ? 1 : 0 };
      if (kindName === "branch" && !Array.isArray(list)) visit(list, [...path, key], [...pos, branchSide]);
      else visitList(list, [...path, key], [...pos, branchSide], how === "ordered");
    }
  };
  visitList(steps, ["steps"], [], true);
  return byPath;
}

async function compileNode(unit, path, extraDeps) {
  const info = unit.byPath.get(pathString(path));
  checkKeys(unit.at, info.value, path, info.kind.keys, info.kindName === "step" ? "a step" : `kind: ${info.kindName}`);
  // `loop.iteration` outside any loop: the last loop before this node in the file.
  info.precedingLoop = unit.lastLoop;
  return info.kind.compile(unit, info, extraDeps);
}

// ---------------------------------------------------------------- node compilers

async function compileStep(unit, info, extraDeps) {
  const { at, program } = unit;
  const { value: v, path } = info;
  const bodies = Object.entries(STEP_BODIES).filter(([, body]) => body.keys.some((k) => k in v));
  const bodyNames = Object.keys(STEP_BODIES).filter((b) => b !== "prompt");
  if (bodies.length === 0) {
    throw at.err("TOON_MISSING_KEY", `step "${info.id}" needs one of ${bodyNames.map((b) => `${b}:`).join(" or ")}`, path);
  }
  if (bodies.length > 1) {
    throw at.err("TOON_CONFLICTING_KEYS", `step "${info.id}" has ${bodies.map(([b]) => `${b}:`).join(" and ")}; a step has exactly one of ${bodyNames.join(", ")}`, [...path, bodies[1][1].keys.find((k) => k in v)]);
  }
  const id = unit.globalId(info.id);
  const isCommand = bodies[0][0] === "command" || bodies[0][0] === "script";
  if (!isCommand) {
    const stray = COMMAND_ONLY_KEYS.find((k) => k in v);
    if (stray) throw at.err("TOON_INVALID_VALUE", `${stray}: applies to command: and script: steps only`, [...path, stray]);
  }
  if (v.output === undefined) {
    if (!isCommand) {
      throw at.err("TOON_MISSING_KEY", `step "${info.id}" needs an output: a block of fields, or the name of an entry in schemas`, [...path, "output"]);
    }
  }
  const table = stepTable(unit, isCommand && v.output === undefined ? { ...info, value: { ...v, output: COMMAND_RESULT_FIELDS } } : info, id);
  const refs = new Set();
  const body = await bodies[0][1].compile(unit, info, refs);
  const node = isCommand ? { kind: "task", id, table, command: body } : { kind: "task", id, table, run: body };
  if (v.approval !== undefined) node.review = readReview(at, v.approval, [...path, "approval"]);
  if (v.skipIf !== undefined) {
    const cond = compileCondition(unit, info, v.skipIf, [...path, "skipIf"]);
    for (const r of cond.refs) refs.add(r);
    node.skipIf = cond.evaluate;
  }
  const retries = readAttempts(at, v, path);
  if (retries !== undefined) node.retries = retries;
  if (v.timeout !== undefined) node.timeoutMs = parseDuration(at, v.timeout, [...path, "timeout"]);
  if (v.label !== undefined) node.label = expectString(at, v.label, [...path, "label"]);
  if (v.continueOnFail !== undefined) {
    if (typeof v.continueOnFail !== "boolean") throw at.err("TOON_INVALID_VALUE", "continueOnFail must be true or false", [...path, "continueOnFail"]);
    if (v.continueOnFail) node.continueOnFail = true;
  }
  node.dependsOn = [];
  program.pending.push({ node, deps: depsFor(unit, info, refs, readNeeds(unit, info), extraDeps) });
  program.tableOf.set(id, table);
  return node;
}

function compileRunBody(unit, info, refs) {
  const path = [...info.path, "run"];
  const source = info.value.run;
  if (typeof source !== "string" || source.trim() === "") {
    throw unit.at.err("TOON_INVALID_VALUE", "run: is a JavaScript body or expression (a string)", path);
  }
  const expr = compileExpression(unit, info, source, path, { body: true });
  for (const r of expr.refs) refs.add(r);
  return expr.call;
}

async function compileHandlerBody(unit, info) {
  const { at } = unit;
  const path = [...info.path, "handler"];
  const spec = info.value.handler;
  if (typeof spec !== "string" || spec.trim() === "") {
    throw at.err("TOON_INVALID_VALUE", "handler: is ./module.ts#export (or an imported handler module's name #export)", path);
  }
  const hash = spec.lastIndexOf("#");
  const modulePart = (hash < 0 ? spec : spec.slice(0, hash)).trim();
  const exportName = hash < 0 ? "default" : spec.slice(hash + 1).trim() || "default";
  let file;
  if (modulePart.startsWith(".") || modulePart.startsWith("/")) {
    file = resolvePath(at.dir, modulePart);
    const found = moduleFile(file);
    if (!found) throw at.err("TOON_HANDLER_NOT_FOUND", `handler module ${file} does not exist`, path, { handler: spec, module: file });
    file = found;
  } else {
    const imported = unit.imports.handlers.get(modulePart);
    if (!imported) {
      throw at.err("TOON_HANDLER_NOT_FOUND", `no handler module "${modulePart}": give a path (./file.ts#export) or import it under imports.handlers`, path, { handler: spec });
    }
    file = imported.file;
  }
  const mod = await importHandler(unit, file, spec, path);
  const fn = mod[exportName];
  if (typeof fn !== "function") {
    const what = exportName === "default" ? "no default export" : `no export "${exportName}"`;
    throw at.err("TOON_HANDLER_NOT_FOUND", `${file} has ${what}${fn === undefined ? "" : " that is a function"}`, path, { handler: spec, module: file, export: exportName });
  }
  return (env, frame) =>
    fn({ input: unit.call.inputOf(env, frame), steps: stepsObject(unit, env), loop: loopValue(info, env, frame), ctx: env.ctx });
}

async function importHandler(unit, file, spec, path) {
  const { modules } = unit.program;
  if (modules.has(file)) return modules.get(file);
  registerLoader();
  let mod;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (e) {
    throw unit.at.err("TOON_HANDLER_LOAD_FAILED", `handler module ${file} failed to load: ${e?.message ?? e}`, path, { handler: spec, module: file });
  }
  modules.set(file, mod);
  return mod;
}

function compileApproval(unit, info, extraDeps) {
  const { at, program } = unit;
  const { value: v, path } = info;
  const id = unit.globalId(info.id);
  const req = v.request;
  if (req === undefined) throw at.err("TOON_MISSING_KEY", `approval "${info.id}" needs a request: { title, summary }`, [...path, "request"]);
  if (typeof req !== "object" || req === null || Array.isArray(req)) {
    throw at.err("TOON_INVALID_VALUE", "request is a block with title (and summary)", [...path, "request"]);
  }
  checkKeys(at, req, [...path, "request"], ["title", "summary"], "request");
  if (req.title === undefined) throw at.err("TOON_MISSING_KEY", `approval "${info.id}" needs request.title`, [...path, "request", "title"]);
  const title = compileTemplate(unit, info, expectString(at, req.title, [...path, "request", "title"]), [...path, "request", "title"]);
  const summary =
    req.summary === undefined || req.summary === null
      ? null
      : compileTemplate(unit, info, expectString(at, req.summary, [...path, "request", "summary"]), [...path, "request", "summary"]);
  const refs = new Set([...title.refs, ...(summary?.refs ?? [])]);
  // As <Approval>: a denial is recorded (approved: false) and the run goes on, unless "fail".
  const onDeny = v.onDeny ?? "continue";
  if (!ON_DENY.includes(onDeny)) throw at.err("TOON_INVALID_VALUE", `onDeny must be one of ${ON_DENY.join(", ")}`, [...path, "onDeny"]);

  let table;
  if (v.output === undefined) {
    table = tableKeyFor(id);
    checkKey(at, table, [...path, "id"], `the table derived from id "${info.id}"`, "name one with output: <table>");
  } else {
    table = expectString(at, v.output, [...path, "output"]);
    if (unit.schemas.has(table)) {
      throw at.err("TOON_INVALID_VALUE", `an approval writes its decision (approved, note, decidedBy, decidedAt) to its table; "${table}" is a schema of schemas: name another table`, [...path, "output"]);
    }
    checkKey(at, table, [...path, "output"], "output", "");
  }
  program.tables.add(table, JSON.parse(JSON.stringify(approvalDecisionSchema)), (m) => at.err("TOON_OUTPUT_CONFLICT", m, [...path, v.output === undefined ? "id" : "output"]));
  program.tableOf.set(id, table);

  const refList = [...refs];
  const node = {
    kind: "approval",
    id,
    table,
    onDeny,
    // Rendered once every step it names has an output; until then the title is the id.
    request: (env, frame) =>
      refList.every((r) => unit.readName(env, r) !== undefined)
        ? { title: text(title.evaluate(env, frame)), summary: summary ? text(summary.evaluate(env, frame)) : null }
        : null,
    dependsOn: [],
  };
  for (const key of ["allowedUsers", "allowedScopes"]) {
    if (v[key] === undefined) continue;
    const list = typeof v[key] === "string" ? [v[key]] : v[key];
    if (!Array.isArray(list) || list.some((u) => typeof u !== "string" || u === "")) {
      throw at.err("TOON_INVALID_VALUE", `${key} is a list of names`, [...path, key]);
    }
    node[key] = list;
  }
  Object.assign(node, readDeadline(at, v, path));
  if (v.quorum !== undefined) node.quorum = toonQuorum(at, v.quorum, [...path, "quorum"]);
  program.pending.push({ node, deps: depsFor(unit, info, refs, readNeeds(unit, info), extraDeps) });
  return node;
}

/**
 * `timeoutMs`, `deadline` (ISO 8601) and `onTimeout` (deny | approve | fail) of an approval or
 * a step's review: the gate's deadline (`system:timeout` records onTimeout when it passes).
 */
function readDeadline(at, v, path) {
  const out = {};
  if (v.timeoutMs !== undefined) {
    if (!Number.isInteger(v.timeoutMs) || v.timeoutMs < 1) throw at.err("TOON_INVALID_VALUE", "timeoutMs must be a positive whole number of milliseconds", [...path, "timeoutMs"]);
    out.timeoutMs = v.timeoutMs;
  }
  if (v.deadline !== undefined) {
    if (typeof v.deadline !== "string" || !Number.isFinite(Date.parse(v.deadline))) {
      throw at.err("TOON_INVALID_VALUE", "deadline must be an ISO 8601 time", [...path, "deadline"]);
    }
    out.deadline = v.deadline;
  }
  if (v.onTimeout !== undefined) {
    if (!["deny", "approve", "fail"].includes(v.onTimeout)) throw at.err("TOON_INVALID_VALUE", "onTimeout must be one of deny, approve, fail", [...path, "onTimeout"]);
    if (out.timeoutMs === undefined && out.deadline === undefined) throw at.err("TOON_INVALID_VALUE", "onTimeout needs timeoutMs or deadline", [...path, "onTimeout"]);
    out.onTimeout = v.onTimeout;
  }
  return out;
}

/** `quorum: { approvals, from?, veto? }` of an approval (as `<Approval quorum>`). */
function toonQuorum(at, q, path) {
  if (q === null || typeof q !== "object" || Array.isArray(q)) throw at.err("TOON_INVALID_VALUE", "quorum is an object: approvals, from, veto", path);
  for (const key of Object.keys(q)) {
    if (!["approvals", "from", "veto"].includes(key)) throw at.err("TOON_UNKNOWN_KEY", `quorum has no ${key} (approvals, from, veto)`, [...path, key]);
  }
  if (!Number.isInteger(q.approvals) || q.approvals < 1) throw at.err("TOON_INVALID_VALUE", "quorum.approvals is a whole number ≥ 1", [...path, "approvals"]);
  const out = { approvals: q.approvals };
  for (const key of ["from", "veto"]) {
    if (q[key] === undefined) continue;
    const list = typeof q[key] === "string" ? [q[key]] : q[key];
    if (!Array.isArray(list) || list.some((u) => typeof u !== "string" || u === "")) throw at.err("TOON_INVALID_VALUE", `quorum.${key} is a list of names`, [...path, key]);
    out[key] = list;
  }
  return out;
}

async function compileChildren(unit, info, key, extraDeps) {
  const list = info.value[key];
  if (list === undefined) throw unit.at.err("TOON_MISSING_KEY", `kind: ${info.kindName} needs ${key}[N]: a list of nodes`, [...info.path, key]);
  const out = [];
  for (let i = 0; i < list.length; i++) out.push(await compileNode(unit, [...info.path, key, i], extraDeps));
  return out;
}

async function compileSequence(unit, info, extraDeps) {
  return { kind: "sequence", children: await compileChildren(unit, info, "children", extraDeps) };
}

async function compileParallel(unit, info, extraDeps) {
  const node = { kind: "parallel", children: await compileChildren(unit, info, "children", extraDeps) };
  if (info.value.maxConcurrency !== undefined) {
    node.maxConcurrency = positiveInt(unit.at, info.value.maxConcurrency, [...info.path, "maxConcurrency"]);
  }
  return node;
}

async function compileBranch(unit, info, extraDeps) {
  const { at } = unit;
  const { value: v, path } = info;
  if (v.condition === undefined) throw at.err("TOON_MISSING_KEY", "kind: branch needs a condition", [...path, "condition"]);
  if (v.then === undefined) throw at.err("TOON_MISSING_KEY", "kind: branch needs then: (a node, or a list of nodes run in order)", [...path, "then"]);
  const cond = compileCondition(unit, info, v.condition, [...path, "condition"]);
  // Nothing in the branch runs before the steps its condition reads.
  const inner = [...extraDeps, ...earlierRefs(unit, info, cond.refs)];
  const side = async (key) => {
    if (v[key] === undefined) return null;
    if (!Array.isArray(v[key])) return compileNode(unit, [...path, key], inner);
    const children = [];
    for (let i = 0; i < v[key].length; i++) children.push(await compileNode(unit, [...path, key, i], inner));
    return { kind: "sequence", children };
  };
  return { kind: "branch", condition: cond.evaluate, then: await side("then"), else: await side("else") };
}

async function compileLoop(unit, info, extraDeps) {
  const { at } = unit;
  const { value: v, path } = info;
  if (v.until === undefined) throw at.err("TOON_MISSING_KEY", `loop "${info.id}" needs until: (a condition)`, [...path, "until"]);
  const id = unit.globalId(info.id);
  const until = compileCondition(unit, info, v.until, [...path, "until"]);
  const onMaxReached = v.onMaxReached ?? "return-last";
  if (!ON_MAX_REACHED.includes(onMaxReached)) {
    throw at.err("TOON_INVALID_VALUE", `onMaxReached must be one of ${ON_MAX_REACHED.join(", ")}`, [...path, "onMaxReached"]);
  }
  const maxIterations = v.maxIterations === undefined ? 5 : positiveInt(at, v.maxIterations, [...path, "maxIterations"]);
  const inner = [...extraDeps, ...earlierRefs(unit, info, until.refs)];
  const children = await compileChildren(unit, info, "children", inner);
  unit.program.expansions.set(id, tasksIn(children));
  unit.lastLoop = id;
  return { kind: "loop", id, until: until.evaluate, maxIterations, onMaxReached, children };
}

async function compileSubWorkflow(unit, info, extraDeps) {
  const { at, program, call } = unit;
  const { value: v, path } = info;
  const id = unit.globalId(info.id);
  if (v.use === undefined) throw at.err("TOON_MISSING_KEY", `kind: workflow "${info.id}" needs use: <name under imports.workflows>`, [...path, "use"]);
  const imported = unit.imports.workflows.get(v.use);
  if (!imported) {
    const known = [...unit.imports.workflows.keys()];
    throw at.err("TOON_UNKNOWN_IMPORT", `no workflow imported as ${JSON.stringify(v.use)}${known.length ? ` (imported: ${known.join(", ")})` : ""}`, [...path, "use"]);
  }
  if (call.stack.includes(imported.file)) {
    throw at.err("TOON_IMPORT_CYCLE", `importing ${imported.file} again makes a cycle: ${[...call.stack, imported.file].join(" -> ")}`, [...path, "use"]);
  }
  if (v.with !== undefined && v.input !== undefined) {
    throw at.err("TOON_CONFLICTING_KEYS", "give the sub-workflow's input as with: or input:, not both", [...path, "input"]);
  }
  const mapKey = v.with !== undefined ? "with" : "input";
  const mapping = v[mapKey] ?? {};
  if (typeof mapping !== "object" || mapping === null || Array.isArray(mapping)) {
    throw at.err("TOON_INVALID_VALUE", `${mapKey} is a block: the sub-workflow's input fields and their values`, [...path, mapKey]);
  }
  const refs = new Set();
  const value = compileValue(unit, info, mapping, [...path, mapKey], refs);
  const inputOf = (env, frame) => value(env, frame);

  const parsed = parseFile(program, imported.file);
  const inner = await compileUnit(program, parsed, {
    prefix: `${id}.`,
    inputOf,
    stack: [...call.stack, imported.file],
    extraDeps: [...extraDeps, ...readNeeds(unit, info).map(unit.globalId), ...earlierRefs(unit, info, refs)],
  });
  // The mapping must give the fields the sub-workflow declares, and no others.
  const declared = inner.inputSchema?.properties;
  if (declared) {
    for (const key of Object.keys(mapping)) {
      if (!Object.hasOwn(declared, key)) {
        throw at.err("TOON_UNKNOWN_KEY", `${imported.file} has no input field "${key}" (its fields: ${Object.keys(declared).join(", ")})`, [...path, mapKey, key]);
      }
    }
    for (const key of inner.inputSchema.required ?? []) {
      if (!Object.hasOwn(mapping, key)) {
        throw at.err("TOON_MISSING_KEY", `the sub-workflow needs input field "${key}"`, [...path, mapKey]);
      }
    }
  }
  program.expansions.set(id, tasksIn(inner.steps));
  const last = inner.steps[inner.steps.length - 1];
  if (last.kind === "task" || last.kind === "approval") unit.resultOf.set(info.id, last.id);
  return { kind: "sequence", children: inner.steps };
}

// ---------------------------------------------------------------- expressions

/**
 * An expression or `run:` body: checked now (TOON_INVALID_EXPRESSION), called as
 * `call(env, frame)` with the scope names and the steps it reads.
 */
function compileExpression(unit, info, source, path, { body = false } = {}) {
  let analysed;
  let compiled;
  try {
    analysed = analyse(source, unit.names);
    compiled = compileFunction(analysed.source, analysed.refs, { body });
  } catch (e) {
    if (e instanceof ExpressionSyntaxError || e instanceof SyntaxError) {
      throw unit.at.err("TOON_INVALID_EXPRESSION", `${e.message} in ${JSON.stringify(source)}`, path, { expression: source });
    }
    throw e;
  }
  const direct = compiled.params.slice(SCOPE_NAMES.length);
  const { fn } = compiled;
  const call = (env, frame) =>
    fn(
      unit.call.inputOf(env, frame),
      loopValue(info, env, frame),
      env.ctx,
      stepsObject(unit, env),
      ...direct.map((name) => unit.readName(env, name)),
    );
  return { refs: analysed.refs, call, source };
}

/**
 * A condition (`until`, `condition`, `skipIf`): a boolean, a bare expression
 * (`review.approved`), or the `{…}` form (`{review.approved}`, `"{review.score} > 7"`).
 * While a step it reads has no output yet, an expression that throws is false.
 */
function compileCondition(unit, info, value, path) {
  if (typeof value === "boolean") return { refs: [], evaluate: () => value };
  if (typeof value !== "string" || value.trim() === "") {
    throw unit.at.err("TOON_INVALID_VALUE", "a condition is true, false, or an expression", path);
  }
  // With braces, the {…} form first: "{a} && {b}" is also valid JavaScript (two object
  // literals, always true), which is never what a condition means. A bare expression with
  // braces of its own (an arrow function body) does not compile in that form and is read as is.
  let expr;
  if (value.includes("{")) {
    try {
      const parts = splitTemplate(value);
      if (parts.some((p) => "expr" in p)) {
        expr = compileExpression(unit, info, parts.map((p) => ("expr" in p ? `(${p.expr})` : p.text)).join(""), path);
      }
    } catch {
      expr = undefined;
    }
  }
  expr ??= compileExpression(unit, info, value, path);
  const evaluate = (env, frame) => {
    try {
      return Boolean(expr.call(env, frame));
    } catch (e) {
      if (expr.refs.some((r) => unit.readName(env, r) === undefined)) return false;
      throw failed(unit, path, expr.source, e);
    }
  };
  return { refs: expr.refs, evaluate };
}

/**
 * `Deploy {build.version}?`: literal text and `{expressions}`. A string that is one
 * `{expression}` evaluates to its value (not a string), e.g. an object in with:.
 */
function compileTemplate(unit, info, str, path) {
  let parts;
  try {
    parts = splitTemplate(str);
  } catch (e) {
    throw unit.at.err("TOON_INVALID_EXPRESSION", `${e.message} in ${JSON.stringify(str)}`, path, { expression: str });
  }
  const compiled = parts.map((p) => ("expr" in p ? compileExpression(unit, info, p.expr, path) : p));
  const refs = [...new Set(compiled.flatMap((p) => p.refs ?? []))];
  const single = compiled.length === 1 && compiled[0].call;
  const run = (p, env, frame) => {
    try {
      return p.call(env, frame);
    } catch (e) {
      throw failed(unit, path, p.source, e);
    }
  };
  const evaluate = single
    ? (env, frame) => run(compiled[0], env, frame)
    : (env, frame) => compiled.map((p) => (p.call ? text(run(p, env, frame)) : p.text)).join("");
  return { refs, evaluate };
}

/** A with:/input: value: strings are templates, blocks and lists are walked, the rest is constant. */
function compileValue(unit, info, value, path, refs) {
  if (typeof value === "string") {
    const t = compileTemplate(unit, info, value, path);
    for (const r of t.refs) refs.add(r);
    return (env, frame) => {
      try {
        return t.evaluate(env, frame);
      } catch (e) {
        // A value that reads a step with no output yet is undefined for now.
        if (t.refs.some((r) => unit.readName(env, r) === undefined)) return undefined;
        throw e;
      }
    };
  }
  if (Array.isArray(value)) {
    const items = value.map((v, i) => compileValue(unit, info, v, [...path, i], refs));
    return (env, frame) => items.map((f) => f(env, frame));
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => [k, compileValue(unit, info, v, [...path, k], refs)]);
    return (env, frame) => Object.fromEntries(entries.map(([k, f]) => [k, f(env, frame)]));
  }
  return () => value;
}

function failed(unit, path, source, e) {
  if (e instanceof SmithersError) return e;
  return unit.at.err("TOON_EXPRESSION_FAILED", `${e?.message ?? e} in ${JSON.stringify(source)}`, path, { expression: source });
}

/** Every step of the file by id, read on access; one object per file and render. */
function stepsObject(unit, env) {
  unit.stepsByEnv ??= new WeakMap();
  let out = unit.stepsByEnv.get(env);
  if (!out) {
    out = {};
    for (const name of unit.names) {
      Object.defineProperty(out, name, { get: () => unit.readName(env, name), enumerable: true });
    }
    unit.stepsByEnv.set(env, out);
  }
  return out;
}

function loopValue(info, env, frame) {
  const loopId = frame.loops[frame.loops.length - 1] ?? info.precedingLoop;
  return { iteration: loopId ? env.iteration(loopId) : 0 };
}

function text(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// ---------------------------------------------------------------- dependencies

/** Local ids named by `needs` (one id, a comma list, or a list), checked. */
function readNeeds(unit, info) {
  const { at } = unit;
  const path = [...info.path, "needs"];
  const raw = info.value.needs;
  if (raw === undefined) return [];
  const list = typeof raw === "string" ? raw.split(",").map((s) => s.trim()).filter(Boolean) : raw;
  if (!Array.isArray(list) || list.some((n) => typeof n !== "string")) {
    throw at.err("TOON_INVALID_VALUE", "needs is a list of ids (needs[N]: a,b)", path);
  }
  for (const need of list) {
    const target = unit.ids.get(need);
    if (!target) {
      throw at.err("TOON_UNKNOWN_NEED", `needs "${need}", which is no step of this workflow`, path, { need });
    }
    if (target === info) throw at.err("TOON_UNKNOWN_NEED", `"${need}" cannot need itself`, path, { need });
    const order = runOrder(target.pos, info.pos);
    if (order === "contains") {
      throw at.err("TOON_NEED_ORDER", `needs "${need}", which contains it: it could never finish first`, path, { need });
    }
    if (order === "after") {
      throw at.err("TOON_NEED_ORDER", `needs "${need}", which runs after it in the same sequence`, path, { need });
    }
  }
  return list;
}

/** Where node a (needed) runs relative to node b: "after" b in an ordered list, "contains" b, or null. */
function runOrder(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i].index !== b[i].index) return a[i].ordered && a[i].index > b[i].index ? "after" : null;
  }
  return a.length < b.length ? "contains" : null;
}

/** Global ids of the nodes named by refs that come before `info` in the file. */
function earlierRefs(unit, info, refs) {
  const out = [];
  for (const r of refs) {
    const target = unit.ids.get(r);
    if (target && target !== info && target.order < info.order) out.push(unit.globalId(r));
  }
  return out;
}

/** Dependencies of a task or approval: needs, earlier steps it reads, the enclosing ones'. */
function depsFor(unit, info, refs, needs, extraDeps) {
  return [...new Set([...extraDeps, ...needs.map(unit.globalId), ...earlierRefs(unit, info, refs)])];
}

function tasksIn(nodes) {
  const out = [];
  const walk = (n) => {
    if (!n) return;
    if (n.kind === "task" || n.kind === "approval") out.push(n.id);
    for (const c of n.children ?? []) walk(c);
    if (n.kind === "branch") {
      walk(n.then);
      walk(n.else);
    }
  };
  nodes.forEach(walk);
  return out;
}

// ---------------------------------------------------------------- top-level blocks

function readImports(at, imports) {
  const out = { workflows: new Map(), handlers: new Map() };
  if (imports === undefined) return out;
  if (typeof imports !== "object" || imports === null || Array.isArray(imports)) {
    throw at.err("TOON_INVALID_VALUE", "imports is a block: workflows[N]{from,as} and handlers[N]{from,as}", ["imports"]);
  }
  checkKeys(at, imports, ["imports"], IMPORT_KINDS, "imports");
  for (const kind of IMPORT_KINDS) {
    const list = imports[kind];
    if (list === undefined) continue;
    const path = ["imports", kind];
    if (!Array.isArray(list)) throw at.err("TOON_INVALID_VALUE", `imports.${kind} is a list: ${kind}[N]{from,as}:`, path);
    list.forEach((entry, i) => {
      const p = [...path, i];
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        throw at.err("TOON_INVALID_VALUE", "an import is { from, as }", p);
      }
      checkKeys(at, entry, p, ["from", "as"], "an import");
      const from = expectString(at, entry.from, [...p, "from"], "from (a path)");
      const as = expectString(at, entry.as, [...p, "as"], "as (a name)");
      if (out[kind].has(as)) throw at.err("TOON_INVALID_VALUE", `"${as}" is imported twice`, [...p, "as"]);
      const file = resolvePath(at.dir, from);
      if (kind === "workflows") {
        if (extname(file) !== ".toon") throw at.err("TOON_INVALID_VALUE", "an imported workflow is a .toon file", [...p, "from"]);
        if (!existsSync(file)) throw at.err("TOON_IMPORT_NOT_FOUND", `no such workflow file: ${file}`, [...p, "from"], { import: file });
        out[kind].set(as, { file, path: p });
      } else {
        const found = moduleFile(file);
        if (!found) throw at.err("TOON_HANDLER_NOT_FOUND", `handler module ${file} does not exist`, [...p, "from"], { module: file });
        out[kind].set(as, { file: found, path: p });
      }
    });
  }
  return out;
}

/** `schemas:` name -> { schema, path }; each name is an output table key. */
function readSchemas(at, schemas) {
  const out = new Map();
  if (schemas === undefined) return out;
  if (typeof schemas !== "object" || schemas === null || Array.isArray(schemas)) {
    throw at.err("TOON_INVALID_VALUE", "schemas is a block: name, then its fields", ["schemas"]);
  }
  for (const [name, fields] of Object.entries(schemas)) {
    const path = ["schemas", name];
    checkKey(at, name, path, "schema name", "");
    out.set(name, { schema: convertFields(at, fields, path, { output: true }), path });
  }
  return out;
}

function readInput(at, input, schemas) {
  if (input === undefined) return null;
  if (typeof input === "string") {
    const named = schemas.get(input);
    if (!named) throw at.err("TOON_UNKNOWN_SCHEMA", `no schema named "${input}" in schemas`, ["input"]);
    return named.schema;
  }
  return convertFields(at, input, ["input"], { output: false });
}

/** `command:` / `script:` with `cwd`, `env`, `parse`, `shell`; `cwd` is relative to the file. */
function compileCommandBody(unit, info, which) {
  const { at } = unit;
  const { value: v, path } = info;
  const text = v[which];
  if (typeof text !== "string" || text.trim() === "") throw at.err("TOON_INVALID_VALUE", `${which} must be a non-empty string`, [...path, which]);
  const spec = { [which]: text };
  if (v.cwd !== undefined) spec.cwd = expectString(at, v.cwd, [...path, "cwd"]);
  if (v.shell !== undefined) spec.shell = expectString(at, v.shell, [...path, "shell"]);
  if (v.parse !== undefined) {
    if (v.parse !== "json" && v.parse !== "text") throw at.err("TOON_INVALID_VALUE", "parse must be json or text", [...path, "parse"]);
    spec.parse = v.parse;
  }
  if (v.env !== undefined) {
    if (typeof v.env !== "object" || v.env === null || Array.isArray(v.env)) {
      throw at.err("TOON_INVALID_VALUE", "env must be a block of NAME: value", [...path, "env"]);
    }
    spec.env = Object.fromEntries(Object.entries(v.env).map(([k, val]) => [k, String(val)]));
  }
  return spec;
}

/** `approval: {prompt, input[N], required[N], rewindTo}` on a step: review after it ran. */
function readReview(at, value, path) {
  if (value === true) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw at.err("TOON_INVALID_VALUE", "approval must be a block: prompt, input[N], required[N]", path);
  }
  checkKeys(at, value, path, ["prompt", "input", "required", "allowedUsers", "allowedScopes", "rewindTo", "timeoutMs", "deadline", "onTimeout"], "a step's approval");
  const review = readDeadline(at, value, path);
  if (value.prompt !== undefined) review.prompt = expectString(at, value.prompt, [...path, "prompt"]);
  // Where a push-back restarts: this step or one it needs (the core checks which).
  if (value.rewindTo !== undefined) review.rewindTo = expectString(at, value.rewindTo, [...path, "rewindTo"]);
  for (const key of ["input", "required", "allowedUsers", "allowedScopes"]) {
    if (value[key] === undefined) continue;
    const list = value[key];
    if (!Array.isArray(list) || list.some((x) => typeof x !== "string" || x === "")) {
      throw at.err("TOON_INVALID_VALUE", `${key} must be a list of names (${key}[N]: A,B)`, [...path, key]);
    }
    review[key] = list;
  }
  const missing = (review.required ?? []).filter((r) => !(review.input ?? []).includes(r));
  if (missing.length) throw at.err("REQUIRED_NOT_IN_INPUT", `required ${missing.join(", ")} not in input`, [...path, "required"]);
  return review;
}

function stepTable(unit, info, id) {
  const { at, program } = unit;
  const { output } = info.value;
  const path = [...info.path, "output"];
  let key;
  let schema;
  if (typeof output === "string") {
    const named = unit.schemas.get(output);
    if (!named) {
      const known = [...unit.schemas.keys()];
      throw at.err("TOON_UNKNOWN_SCHEMA", `no schema named "${output}"${known.length ? ` (schemas: ${known.join(", ")})` : " (this file has no schemas block)"}`, path);
    }
    key = output;
    schema = named.schema;
  } else {
    key = tableKeyFor(id);
    checkKey(at, key, [...info.path, "id"], `the table derived from id "${info.id}"`, "name a schema with output: <name>");
    schema = convertFields(at, output, path, { output: true });
  }
  program.tables.add(key, schema, (m) => at.err("TOON_OUTPUT_CONFLICT", m, path));
  return key;
}

function convertFields(at, fields, path, { output }) {
  try {
    return fieldMapToSchema(fields, {
      checkField: output
        ? (name, fieldPath) => {
            if (identifierProblem(name) !== null) {
              throw new FieldTypeError(`output field "${name}" must match ^[A-Za-z][A-Za-z0-9_]*$ (at most 63 bytes): it is a column`, fieldPath);
            }
            if (fieldProblem(name) !== null) {
              throw new FieldTypeError(`output field "${name}" is a key column of every output table (run_id, node_id, iteration)`, fieldPath);
            }
          }
        : undefined,
    });
  } catch (e) {
    if (!(e instanceof FieldTypeError)) throw e;
    const sub = e.path ? e.path.split(/\.|(?=\[)/).map((s) => (/^\[\d+\]$/.test(s) ? Number(s.slice(1, -1)) : s)) : [];
    throw at.err("TOON_INVALID_FIELD_TYPE", e.message, [...path, ...sub]);
  }
}

// ---------------------------------------------------------------- small readers

function checkKeys(at, obj, path, allowed, what) {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw at.err("TOON_UNKNOWN_KEY", `${what} has no key "${key}" (keys: ${allowed.join(", ")})`, [...path, key], { unknownKey: key });
    }
  }
}

function checkKey(at, key, path, what, hint) {
  try {
    checkTableKey(key, what);
  } catch (e) {
    if (e?.code !== "INVALID_IDENTIFIER") throw e;
    throw at.err("INVALID_IDENTIFIER", `${e.message}${hint ? `; ${hint}` : ""}`, path, { name: key });
  }
}

function expectString(at, value, path, what = "a string") {
  if (typeof value !== "string") throw at.err("TOON_INVALID_VALUE", `expected ${what}, got ${JSON.stringify(value)}`, path);
  return value;
}

function positiveInt(at, value, path) {
  if (!Number.isInteger(value) || value < 1) throw at.err("TOON_INVALID_VALUE", `expected a whole number >= 1, got ${JSON.stringify(value)}`, path);
  return value;
}

/** retry { maxAttempts } or maxAttempts -> retries (extra attempts), or undefined. */
function readAttempts(at, v, path) {
  if (v.retry !== undefined && v.maxAttempts !== undefined) {
    throw at.err("TOON_CONFLICTING_KEYS", "give maxAttempts or retry.maxAttempts, not both", [...path, "maxAttempts"]);
  }
  if (v.maxAttempts !== undefined) return positiveInt(at, v.maxAttempts, [...path, "maxAttempts"]) - 1;
  if (v.retry === undefined) return undefined;
  const r = v.retry;
  if (typeof r !== "object" || r === null || Array.isArray(r)) {
    throw at.err("TOON_INVALID_VALUE", "retry is a block: retry: then maxAttempts: N", [...path, "retry"]);
  }
  checkKeys(at, r, [...path, "retry"], ["maxAttempts"], "retry (backoff and initialDelay are not supported)");
  if (r.maxAttempts === undefined) throw at.err("TOON_MISSING_KEY", "retry needs maxAttempts", [...path, "retry", "maxAttempts"]);
  return positiveInt(at, r.maxAttempts, [...path, "retry", "maxAttempts"]) - 1;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `timeout: 5m` / `90s` / `1h30m` / `250ms`, or a number of milliseconds. */
export function parseDuration(at, value, path) {
  if (typeof value === "number") return positiveInt(at, value, path);
  const bad = () => at.err("TOON_INVALID_VALUE", `a duration is like 30s, 5m, 1h30m or 250ms (or milliseconds as a number); got ${JSON.stringify(value)}`, path);
  if (typeof value !== "string") throw bad();
  const t = value.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(t)) throw bad();
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_MS[m[2]];
  ms = Math.round(ms);
  if (ms < 1) throw bad();
  return ms;
}
