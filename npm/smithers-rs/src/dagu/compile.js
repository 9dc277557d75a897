// A Dagu DAG (YAML) -> workflow object. The steps compile onto the builder's node model
// (builder.js graphWorkflow), like TOON files do, so a DAG runs, waits, resumes and is
// decided exactly like a .tsx or .toon workflow.
//
// The mapping:
//   steps, `type: graph` (default)  a parallel group; each step waits for its `depends`
//   `type: chain`                   a sequence: each step after the one before it
//   step with command / script      a command task (run by the core), output {exitCode, stdout, stderr}
//   step with call                  a sub-run of another DAG file, output {subRunId, status, outputs}
//   `approval:`                     a review after the step ran (prompt, input, required, rewind_to)
//   params, env, output             environment of each step: run input, `env` (${VAR} expanded),
//                                   `output: VAR` of the steps it depends on (transitively)
//   handler_on, mail_on             the workflow's onWait/onSuccess/onFailure/onExit, wait/failure mail
//
// Node ids are the steps' names (an `id:` is another name for the step in depends,
// rewind_to). Every step writes to one of two tables: dagu_step (commands), dagu_call
// (sub-DAGs). Any key not listed here is refused with its line (DAGU_UNKNOWN_KEY).
import { basename, dirname, extname, resolve as resolvePath } from "node:path";
import { TableRegistry, graphWorkflow } from "../builder.js";
import { SmithersError, keyPath, locatedError } from "../errors.js";
import { RESERVED_ENV } from "../contract.js";
import { commandResultSchema, subRunResultSchema } from "../schema.js";
import { expandEnvTemplates, shellWords, substituteDaguVars } from "../templates.js";
import { parseDagu } from "./parse.js";

// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { existsSync, readFileSync } = process.getBuiltinModule("node:fs");

const TOP_KEYS = [
  "name", "description", "type", "params", "env", "working_dir", "shell", "steps",
  "handler_on", "mail_on", "wait_mail", "error_mail", "smtp",
];
const STEP_KEYS = [
  "name", "id", "description", "command", "script", "shell", "working_dir", "dir", "env", "output",
  "depends", "call", "params", "approval", "timeout_sec", "retry_policy", "continue_on",
];
const COMMAND_ONLY = ["shell", "working_dir", "dir", "env"];
// timeout_sec, deadline, on_timeout: ours (Dagu's gates wait forever), named as Dagu names a step's timeout.
const APPROVAL_KEYS = ["prompt", "input", "required", "rewind_to", "timeout_sec", "deadline", "on_timeout"];
const HANDLER_KEYS = ["command", "script", "shell", "working_dir", "dir", "env"];
const HANDLERS = { wait: "onWait", success: "onSuccess", failure: "onFailure", exit: "onExit" };
const MAIL_ON_KEYS = ["wait", "failure"];
const MAIL_KEYS = ["from", "to", "prefix", "attach_logs"];
const SMTP_KEYS = ["host", "port", "username", "password"];
const STEP_TABLE = "daguStep";
const CALL_TABLE = "daguCall";
const NODE_ID = /^[A-Za-z0-9_.:@=,-]{1,128}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const YAML_EXT = [".yaml", ".yml"];

/** Whether a path names a Dagu DAG file. */
export const isDaguFile = (path) => YAML_EXT.includes(extname(path).toLowerCase());

/**
 * Loads a DAG file: parses, validates and compiles it, and every DAG it calls (so a missing
 * or malformed sub-DAG is a load error too).
 * @param {string} path
 */
export async function loadDaguWorkflow(path) {
  const file = resolvePath(path);
  if (!existsSync(file)) throw new SmithersError("WORKFLOW_NOT_FOUND", `no such workflow file: ${file}`, { path: file });
  return compileDagu(readFileSync(file, "utf8"), { file });
}

/**
 * Compiles DAG text. `file` names it in messages and anchors relative paths (default:
 * dag.yaml in the working directory).
 * @param {string} text
 * @param {{ file?: string }} [options]
 */
export function compileDagu(text, { file: given = "dag.yaml" } = {}) {
  return compileFile(resolvePath(given), text, []);
}

function compileFile(file, text, stack) {
  const { doc, lineOf } = parseDagu(text ?? readFileSync(file, "utf8"), file);
  const at = {
    file,
    dir: dirname(file),
    err: (code, message, path, extra) => locatedError(code, message, { file, line: lineOf(path), key: keyPath(path), ...extra }),
  };
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw at.err("DAGU_INVALID_VALUE", "a DAG is a mapping of keys (name, steps, …)", []);
  }
  checkKeys(at, doc, [], TOP_KEYS, "a DAG");
  const name = doc.name === undefined ? basename(file, extname(file)) : text1(at, doc.name, ["name"]);
  if (doc.description !== undefined) text1(at, doc.description, ["description"]);
  const type = doc.type === undefined ? "graph" : text1(at, doc.type, ["type"]);
  if (type !== "graph" && type !== "chain") {
    throw at.err("DAGU_INVALID_VALUE", `type must be graph or chain (got ${JSON.stringify(type)})`, ["type"]);
  }
  const reserved = RESERVED_ENV;
  const params = readParams(at, doc.params, ["params"], reserved);
  const dagEnv = readEnv(at, doc.env, ["env"]);
  const baseDir = doc.working_dir === undefined ? at.dir : resolvePath(at.dir, text1(at, doc.working_dir, ["working_dir"]));
  const dagShell = doc.shell === undefined ? undefined : text1(at, doc.shell, ["shell"]);
  const steps = readSteps(at, doc.steps, type, { dagEnv, baseDir, dagShell, reserved, stack: [...stack, file] });
  const outputsOf = outputReader(steps);

  const tables = new TableRegistry();
  tables.add(STEP_TABLE, JSON.parse(JSON.stringify(commandResultSchema)), () => null);
  tables.add(CALL_TABLE, JSON.parse(JSON.stringify(subRunResultSchema)), () => null);
  const tableOf = new Map(steps.map((s) => [s.name, s.call ? CALL_TABLE : STEP_TABLE]));
  const nodes = steps.map((s) => taskNode(s, type, outputsOf, name));
  // A handler runs after the render, with the ctx the driver keeps: it reads the rows then.
  const stepsOf = (ctx) => ({ step: (id) => (tableOf.has(id) ? ctx.latest(tableOf.get(id), id) : undefined) });
  const handlers = readHandlers(at, doc.handler_on, {
    dagEnv,
    baseDir,
    dagShell,
    envOf: (ctx) => ({ ...stringParams(ctx.input), ...outputsOf(stepsOf(ctx), null) }),
  });
  const mail = readMail(at, doc);
  return {
    ...graphWorkflow({
      name,
      steps: [{ kind: type === "chain" ? "sequence" : "parallel", children: nodes }],
      handlers,
      schemas: tables.schemas,
      inputSchema: paramsSchema(reserved),
      tableOf,
      source: "dagu",
      file,
      mail,
    }),
    // The run's input is its params: declared defaults, then what the run was given.
    resolveInput: (input) => resolveParams(params, input),
  };
}

// ---------------------------------------------------------------- steps

function readSteps(at, value, type, ctx) {
  if (value === undefined || value === null) return [];
  let list;
  if (Array.isArray(value)) {
    list = value.map((raw, i) => ({ raw, path: ["steps", i], key: null }));
  } else if (isObject(value)) {
    // Dagu's map form: the key is the step's name.
    list = Object.entries(value).map(([key, raw]) => ({ raw, path: ["steps", key], key }));
  } else {
    throw at.err("DAGU_INVALID_VALUE", "steps is a list of steps", ["steps"]);
  }
  const byRef = new Map();
  const steps = list.map(({ raw, path, key }) => {
    if (Array.isArray(raw)) {
      throw at.err("DAGU_UNSUPPORTED", "a nested list of steps (parallel group) is not supported: use type: graph and depends", path);
    }
    if (!isObject(raw)) throw at.err("DAGU_INVALID_VALUE", "a step is a mapping (name, command, …)", path);
    checkKeys(at, raw, path, STEP_KEYS, "a step");
    const name = raw.name !== undefined ? text1(at, raw.name, [...path, "name"]) : raw.id !== undefined ? text1(at, raw.id, [...path, "id"]) : key;
    if (name === null || name === undefined) throw at.err("DAGU_MISSING_KEY", "a step needs a name (or an id)", path);
    if (!NODE_ID.test(name)) {
      throw at.err("DAGU_INVALID_VALUE", `step name ${JSON.stringify(name)}: use 1-128 letters, digits and _ . : @ = , - (no spaces)`, [...path, raw.name !== undefined ? "name" : "id"]);
    }
    const step = { name, path, raw };
    for (const ref of new Set([name, raw.id === undefined ? name : text1(at, raw.id, [...path, "id"])])) {
      if (byRef.has(ref)) throw at.err("DAGU_DUPLICATE_STEP", `two steps are named ${JSON.stringify(ref)}`, path);
      byRef.set(ref, step);
    }
    return step;
  });
  const resolve = (ref, where) => {
    const step = byRef.get(ref);
    if (!step) throw at.err("DAGU_UNKNOWN_STEP", `${JSON.stringify(ref)} is no step of this DAG`, where);
    return step.name;
  };
  steps.forEach((step, i) => {
    const { raw, path } = step;
    const depends = raw.depends === undefined ? [] : stringList(at, raw.depends, [...path, "depends"]);
    if (type === "chain") {
      if (raw.depends !== undefined) {
        throw at.err("DAGU_DEPENDS_IN_CHAIN", "depends is not allowed in a type: chain DAG (each step runs after the one before it); use type: graph", [...path, "depends"]);
      }
      step.depends = i > 0 ? [steps[i - 1].name] : [];
    } else {
      const where = (k) => (Array.isArray(raw.depends) ? [...path, "depends", k] : [...path, "depends"]);
      step.depends = [...new Set(depends.map((d, k) => resolve(d, where(k))))];
      if (step.depends.includes(step.name)) throw at.err("DAGU_DEPENDENCY_CYCLE", `${step.name} depends on itself`, [...path, "depends"]);
    }
  });
  checkCycles(at, steps);
  const byName = new Map(steps.map((s) => [s.name, s]));
  for (const step of steps) step.upstream = upstreamOf(step, byName);
  for (const step of steps) compileStep(at, step, resolve, ctx);
  return steps;
}

function checkCycles(at, steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const state = new Map();
  const visit = (step, trail) => {
    if (state.get(step.name) === "done") return;
    if (state.get(step.name) === "open") {
      const cycle = [...trail.slice(trail.indexOf(step.name)), step.name];
      throw at.err("DAGU_DEPENDENCY_CYCLE", `the steps depend on each other in a cycle: ${cycle.join(" -> ")}`, [...step.path, "depends"]);
    }
    state.set(step.name, "open");
    for (const d of step.depends) visit(byName.get(d), [...trail, step.name]);
    state.set(step.name, "done");
  };
  for (const step of steps) visit(step, []);
}

/** Every step `step` waits for, directly or through others. */
function upstreamOf(step, byName) {
  const seen = new Set();
  const work = [...step.depends];
  while (work.length) {
    const name = work.pop();
    if (seen.has(name)) continue;
    seen.add(name);
    work.push(...byName.get(name).depends);
  }
  return seen;
}

function compileStep(at, step, resolve, ctx) {
  const { raw, path } = step;
  const bodies = ["command", "script", "call"].filter((k) => raw[k] !== undefined);
  if (bodies.length === 0) throw at.err("DAGU_MISSING_KEY", `step ${step.name} needs one of command, script or call`, path);
  if (bodies.length > 1) throw at.err("DAGU_CONFLICTING_KEYS", `step ${step.name} has ${bodies.join(" and ")}; a step has exactly one`, [...path, bodies[1]]);
  if (raw.description !== undefined) step.description = text1(at, raw.description, [...path, "description"]);
  if (raw.call !== undefined) {
    const stray = COMMAND_ONLY.find((k) => raw[k] !== undefined);
    if (stray) throw at.err("DAGU_CONFLICTING_KEYS", `${stray} applies to command and script steps, not to call`, [...path, stray]);
    step.call = resolveCall(at, text1(at, raw.call, [...path, "call"]), [...path, "call"], ctx.stack);
    step.params = raw.params === undefined ? [] : paramEntries(at, raw.params, [...path, "params"]);
  } else {
    if (raw.params !== undefined) throw at.err("DAGU_CONFLICTING_KEYS", "params applies to call steps (a sub-DAG's params)", [...path, "params"]);
    const which = bodies[0];
    const text = text1(at, raw[which], [...path, which]);
    if (text.trim() === "") throw at.err("DAGU_INVALID_VALUE", `${which} must not be empty`, [...path, which]);
    const dirKey = raw.working_dir !== undefined ? "working_dir" : raw.dir !== undefined ? "dir" : null;
    step.command = {
      [which]: text,
      cwd: dirKey ? resolvePath(ctx.baseDir, text1(at, raw[dirKey], [...path, dirKey])) : ctx.baseDir,
      shell: raw.shell === undefined ? ctx.dagShell : text1(at, raw.shell, [...path, "shell"]),
      envTemplates: [...ctx.dagEnv, ...readEnv(at, raw.env, [...path, "env"])],
    };
  }
  if (raw.output !== undefined) {
    const name = text1(at, raw.output, [...path, "output"]);
    if (!ENV_NAME.test(name) || isReserved(ctx.reserved, name)) {
      throw at.err("DAGU_INVALID_VALUE", `output ${JSON.stringify(name)} must be a variable name that is not reserved (PATH, DAG_*, …)`, [...path, "output"]);
    }
    step.output = name;
  }
  if (raw.approval !== undefined) step.review = readApproval(at, step, raw.approval, [...path, "approval"], resolve, ctx.reserved);
  if (raw.timeout_sec !== undefined) step.timeoutMs = positive(at, raw.timeout_sec, [...path, "timeout_sec"]) * 1000;
  if (raw.retry_policy !== undefined) {
    const p = [...path, "retry_policy"];
    if (!isObject(raw.retry_policy)) throw at.err("DAGU_INVALID_VALUE", "retry_policy is a mapping: limit", p);
    checkKeys(at, raw.retry_policy, p, ["limit"], "retry_policy (retries run at once; interval_sec, backoff and exit_code are not supported)");
    if (raw.retry_policy.limit !== undefined) step.retries = whole(at, raw.retry_policy.limit, [...p, "limit"]);
  }
  if (raw.continue_on !== undefined) {
    const p = [...path, "continue_on"];
    if (!isObject(raw.continue_on)) throw at.err("DAGU_INVALID_VALUE", "continue_on is a mapping: failure", p);
    checkKeys(at, raw.continue_on, p, ["failure"], "continue_on");
    if (typeof raw.continue_on.failure !== "boolean") throw at.err("DAGU_INVALID_VALUE", "continue_on.failure is true or false", [...p, "failure"]);
    step.continueOnFail = raw.continue_on.failure;
  }
}

function readApproval(at, step, value, path, resolve, reserved) {
  if (value === null) value = {};
  if (!isObject(value)) throw at.err("DAGU_INVALID_VALUE", "approval is a mapping: prompt, input, required, rewind_to (or {})", path);
  checkKeys(at, value, path, APPROVAL_KEYS, "approval");
  const review = {};
  const prompt = value.prompt === undefined ? step.description : text1(at, value.prompt, [...path, "prompt"]);
  if (prompt !== undefined) review.prompt = prompt;
  for (const key of ["input", "required"]) {
    if (value[key] === undefined) continue;
    const names = stringList(at, value[key], [...path, key]);
    names.forEach((n, i) => {
      if (!ENV_NAME.test(n) || isReserved(reserved, n)) {
        throw at.err("INVALID_INPUT_NAME", `input name ${JSON.stringify(n)} must be a variable name that is not reserved (PATH, HOME, SMITHERS_*, DAG_*, …)`, [...path, key, i]);
      }
    });
    review[key] = names;
  }
  const missing = (review.required ?? []).filter((r) => !(review.input ?? []).includes(r));
  if (missing.length) throw at.err("REQUIRED_NOT_IN_INPUT", `required ${missing.join(", ")} not in input`, [...path, "required"]);
  if (value.rewind_to !== undefined) {
    const target = resolve(text1(at, value.rewind_to, [...path, "rewind_to"]), [...path, "rewind_to"]);
    if (target !== step.name && !step.upstream.has(target)) {
      throw at.err("DAGU_REWIND_TO_INVALID", `rewind_to ${JSON.stringify(target)} must be ${step.name} itself or a step it depends on`, [...path, "rewind_to"]);
    }
    if (target !== step.name) review.rewindTo = target;
  }
  if (value.timeout_sec !== undefined) review.timeoutMs = positive(at, value.timeout_sec, [...path, "timeout_sec"]) * 1000;
  if (value.deadline !== undefined) {
    const deadline = text1(at, value.deadline, [...path, "deadline"]);
    if (!Number.isFinite(Date.parse(deadline))) throw at.err("DAGU_INVALID_VALUE", "deadline must be an ISO 8601 time", [...path, "deadline"]);
    review.deadline = deadline;
  }
  if (value.on_timeout !== undefined) {
    if (!["deny", "approve", "fail"].includes(value.on_timeout)) throw at.err("DAGU_INVALID_VALUE", "on_timeout is deny, approve or fail", [...path, "on_timeout"]);
    if (review.timeoutMs === undefined && review.deadline === undefined) throw at.err("DAGU_INVALID_VALUE", "on_timeout needs timeout_sec or deadline", [...path, "on_timeout"]);
    review.onTimeout = value.on_timeout;
  }
  return review;
}

/** `call: name` or `call: ./path.yaml`: a DAG file next to this one; compiled now, for its errors. */
function resolveCall(at, ref, path, stack) {
  const base = resolvePath(at.dir, ref);
  const candidates = isDaguFile(ref) ? [base] : YAML_EXT.map((ext) => base + ext);
  const file = candidates.find((c) => existsSync(c));
  if (!file) {
    throw at.err("DAGU_CALL_NOT_FOUND", `no DAG ${JSON.stringify(ref)}: looked for ${candidates.join(", ")}`, path);
  }
  if (stack.includes(file)) {
    throw at.err("DAGU_CALL_CYCLE", `${[...stack, file].map((f) => basename(f)).join(" -> ")}: a DAG may not call itself`, path);
  }
  compileFile(file, null, stack);
  return file;
}

/** A step as a node of the builder's model. */
function taskNode(step, type, outputsOf, dagName) {
  // In a graph DAG a step waits for its depends; in a chain the sequence orders the steps.
  const dependsOn = type === "chain" ? [] : step.depends;
  const node = { kind: "task", id: step.name, table: step.call ? CALL_TABLE : STEP_TABLE, dependsOn };
  if (step.call) {
    node.workflow = {
      path: step.call,
      input: (env, taskCtx) => {
        const vars = { ...stringParams(env.ctx.input), ...outputsOf(env, step), ...(taskCtx?.approvalInputs ?? {}) };
        return Object.fromEntries(expandEnvTemplates(step.params, vars));
      },
    };
  } else {
    const which = step.command.command !== undefined ? "command" : "script";
    node.command = (env) => ({
      ...step.command,
      [which]: substituteDaguVars(step.command[which], { DAG_NAME: dagName, DAG_RUN_ID: env.ctx.runId, DAG_RUN_STEP_NAME: step.name }),
      env: { ...stringParams(env.ctx.input), ...outputsOf(env, step) },
    });
  }
  if (step.review) node.review = step.review;
  if (step.timeoutMs !== undefined) node.timeoutMs = step.timeoutMs;
  if (step.retries !== undefined) node.retries = step.retries;
  if (step.continueOnFail) node.continueOnFail = true;
  return node;
}

/**
 * `output: VAR` values a step sees: those of the steps it waits for (all steps with one,
 * for handlers), read from their output rows when they have one. A command step's value
 * is its stdout, trimmed (the last 64 KiB); a sub-DAG's is its outputs as JSON.
 */
function outputReader(steps) {
  const producers = steps.filter((s) => s.output);
  return (env, step) => {
    const vars = {};
    for (const p of producers) {
      if (step && !step.upstream.has(p.name)) continue;
      const row = env.step(p.name);
      if (row === undefined) continue;
      vars[p.output] = p.call ? JSON.stringify(row.outputs ?? {}) : String(row.stdout ?? "").trim();
    }
    return vars;
  };
}

// ---------------------------------------------------------------- params and env

/** `params:` as ordered `[name, value]` pairs: "A=1 B='two words'", a list of A: 1 / "A=1", or a mapping. */
function paramEntries(at, value, path) {
  const entries = [];
  const add = (name, v, where) => {
    if (!ENV_NAME.test(name)) throw at.err("DAGU_INVALID_VALUE", `param ${JSON.stringify(name)} must be a variable name`, where);
    if (v !== null && typeof v === "object") throw at.err("DAGU_INVALID_VALUE", `param ${name} must be a string, number or boolean`, where);
    entries.push([name, v === null || v === undefined ? "" : String(v)]);
  };
  if (typeof value === "string") {
    for (const word of shellWords(value)) {
      const eq = word.indexOf("=");
      if (eq <= 0) throw at.err("DAGU_UNSUPPORTED", `positional param ${JSON.stringify(word)} is not supported: name it (NAME=value)`, path);
      add(word.slice(0, eq), word.slice(eq + 1), path);
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (typeof item === "string" && item.includes("=")) add(item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1), [...path, i]);
      else if (isObject(item) && Object.keys(item).length === 1) add(Object.keys(item)[0], Object.values(item)[0], [...path, i]);
      else throw at.err("DAGU_INVALID_VALUE", "each param is NAME: value (or \"NAME=value\")", [...path, i]);
    });
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) add(k, v, [...path, k]);
  } else if (value !== null) {
    throw at.err("DAGU_INVALID_VALUE", "params is \"NAME=value …\", a list of NAME: value, or a mapping", path);
  }
  return entries;
}

function readParams(at, value, path, reserved) {
  if (value === undefined) return [];
  const entries = paramEntries(at, value, path);
  for (const [name] of entries) {
    if (isReserved(reserved, name)) throw at.err("DAGU_INVALID_VALUE", `param ${name} is a reserved name (PATH, HOME, SMITHERS_*, DAG_*, …)`, path);
  }
  return entries;
}

/** `env:` as ordered `[name, template]` pairs (a list of NAME: value / "NAME=value", or a mapping). */
function readEnv(at, value, path) {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : isObject(value) ? Object.entries(value).map(([k, v]) => ({ [k]: v })) : null;
  if (!list) throw at.err("DAGU_INVALID_VALUE", "env is a list of NAME: value (or a mapping)", path);
  return list.map((item, i) => {
    const where = Array.isArray(value) ? [...path, i] : [...path, Object.keys(item)[0]];
    let name;
    let v;
    if (typeof item === "string" && item.indexOf("=") > 0) [name, v] = [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)];
    else if (isObject(item) && Object.keys(item).length === 1) [[name, v]] = Object.entries(item);
    else throw at.err("DAGU_INVALID_VALUE", "each env entry is NAME: value (or \"NAME=value\")", where);
    if (!ENV_NAME.test(name)) throw at.err("DAGU_INVALID_VALUE", `env name ${JSON.stringify(name)} must be letters, digits and _`, where);
    if (v !== null && typeof v === "object") throw at.err("DAGU_INVALID_VALUE", `env ${name} must be a string, number or boolean`, where);
    const text = v === null || v === undefined ? "" : String(v);
    if (text.includes("`") || text.includes("$(")) {
      throw at.err("DAGU_UNSUPPORTED", `env ${name}: command substitution is not supported (only \${VAR} references are expanded)`, where);
    }
    return [name, text];
  });
}

/** Declared defaults, then the run's input; every value a string. */
function resolveParams(params, input) {
  if (!isObject(input)) return input;
  return { ...Object.fromEntries(params), ...stringParams(input) };
}

const stringParams = (input) =>
  isObject(input) ? Object.fromEntries(Object.entries(input).map(([k, v]) => [k, v === null || v === undefined ? "" : String(v)])) : {};

/** The run's input: named params, each a variable name that is not reserved, scalar values. */
function paramsSchema(reserved) {
  const exact = reserved.exact.map((n) => n.replace(/[^A-Za-z0-9_]/g, "")).join("|");
  const prefixes = reserved.prefixes.map((p) => p.replace(/[^A-Za-z0-9_]/g, "")).join("|");
  return {
    type: "object",
    propertyNames: { pattern: `^(?!(?:${exact})$)(?!(?:${prefixes}))[A-Za-z_][A-Za-z0-9_]*$` },
    additionalProperties: { type: ["string", "number", "boolean"] },
  };
}

const isReserved = (reserved, name) => reserved.exact.includes(name) || reserved.prefixes.some((p) => name.startsWith(p));

// ---------------------------------------------------------------- handlers and mail

function readHandlers(at, value, ctx) {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw at.err("DAGU_INVALID_VALUE", "handler_on is a mapping: wait, success, failure, exit", ["handler_on"]);
  checkKeys(at, value, ["handler_on"], Object.keys(HANDLERS), "handler_on");
  const out = {};
  for (const [key, prop] of Object.entries(HANDLERS)) {
    const h = value[key];
    if (h === undefined) continue;
    const path = ["handler_on", key];
    if (!isObject(h)) throw at.err("DAGU_INVALID_VALUE", "a handler is a mapping: command or script, shell, env, working_dir", path);
    checkKeys(at, h, path, HANDLER_KEYS, "a handler");
    const which = ["command", "script"].filter((k) => h[k] !== undefined);
    if (which.length !== 1) throw at.err(which.length ? "DAGU_CONFLICTING_KEYS" : "DAGU_MISSING_KEY", "a handler has exactly one of command and script", path);
    const dirKey = h.working_dir !== undefined ? "working_dir" : h.dir !== undefined ? "dir" : null;
    out[prop] = {
      [which[0]]: text1(at, h[which[0]], [...path, which[0]]),
      shell: h.shell === undefined ? ctx.dagShell : text1(at, h.shell, [...path, "shell"]),
      cwd: dirKey ? resolvePath(ctx.baseDir, text1(at, h[dirKey], [...path, dirKey])) : ctx.baseDir,
      envTemplates: [...ctx.dagEnv, ...readEnv(at, h.env, [...path, "env"])],
      // Read when the handler runs: the params and every step's output variable so far.
      env: ctx.envOf,
      // Dagu's own variables are substituted into the text, as Dagu does (templates.js).
      daguText: true,
    };
  }
  return out;
}

function readMail(at, doc) {
  if (doc.mail_on === undefined || doc.mail_on === null) {
    for (const k of ["wait_mail", "error_mail", "smtp"]) {
      if (doc[k] !== undefined) throw at.err("DAGU_INVALID_VALUE", `${k} is used only with mail_on`, [k]);
    }
    return null;
  }
  if (!isObject(doc.mail_on)) throw at.err("DAGU_INVALID_VALUE", "mail_on is a mapping: wait, failure", ["mail_on"]);
  checkKeys(at, doc.mail_on, ["mail_on"], MAIL_ON_KEYS, "mail_on");
  const mail = { smtp: null, wait: null, failure: null };
  for (const [when, key] of [["wait", "wait_mail"], ["failure", "error_mail"]]) {
    const on = doc.mail_on[when];
    if (on === undefined || on === false) continue;
    if (on !== true) throw at.err("DAGU_INVALID_VALUE", `mail_on.${when} is true or false`, ["mail_on", when]);
    const m = doc[key];
    if (!isObject(m)) throw at.err("DAGU_MISSING_KEY", `mail_on.${when} needs ${key}: {from, to, prefix}`, ["mail_on", when]);
    checkKeys(at, m, [key], MAIL_KEYS, key);
    if (m.attach_logs === true) throw at.err("DAGU_UNSUPPORTED", "attach_logs is not supported (the mail names the run; `smithers logs` shows its output)", [key, "attach_logs"]);
    const from = text1(at, m.from, [key, "from"]);
    const to = typeof m.to === "string" ? [m.to] : stringList(at, m.to, [key, "to"]);
    if (!from?.includes("@") || to.length === 0 || !to.every((t) => t.includes("@"))) {
      throw at.err("DAGU_INVALID_VALUE", "from and to must be mail addresses", [key]);
    }
    mail[when] = { from, to, prefix: m.prefix === undefined ? "" : text1(at, m.prefix, [key, "prefix"]) };
  }
  if (doc.smtp !== undefined) {
    if (!isObject(doc.smtp)) throw at.err("DAGU_INVALID_VALUE", "smtp is a mapping: host, port, username, password", ["smtp"]);
    checkKeys(at, doc.smtp, ["smtp"], SMTP_KEYS, "smtp");
    // Each may be ${VAR}: expanded from the environment when the mail is sent.
    const host = text1(at, doc.smtp.host, ["smtp", "host"]);
    const port = doc.smtp.port === undefined ? undefined : text1(at, doc.smtp.port, ["smtp", "port"]);
    if (port !== undefined && !port.includes("$") && !/^\d{1,5}$/.test(port)) throw at.err("DAGU_INVALID_VALUE", "smtp.port must be 1-65535", ["smtp", "port"]);
    mail.smtp = {
      host,
      ...(port !== undefined ? { port } : {}),
      ...(doc.smtp.username !== undefined ? { user: text1(at, doc.smtp.username, ["smtp", "username"]) } : {}),
      ...(doc.smtp.password !== undefined ? { pass: text1(at, doc.smtp.password, ["smtp", "password"]) } : {}),
    };
  } else if ((mail.wait || mail.failure) && !process.env.SMITHERS_SMTP_HOST) {
    throw at.err("DAGU_MAIL_NO_SMTP", "mail_on needs an SMTP server: an smtp: block (host, port, username, password) or $SMITHERS_SMTP_HOST", ["mail_on"]);
  }
  return mail.wait || mail.failure ? mail : null;
}

// ---------------------------------------------------------------- values

function checkKeys(at, value, path, allowed, what) {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw at.err("DAGU_UNKNOWN_KEY", `${key} is not supported in ${what} (supported: ${allowed.join(", ")})`, [...path, key], { unknownKey: key });
    }
  }
}

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** A scalar as text (YAML reads `name: 1.2` as a number). */
function text1(at, value, path) {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw at.err("DAGU_INVALID_VALUE", "must be a string", path);
}

function stringList(at, value, path) {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((x) => typeof x !== "string" || x === "")) {
    throw at.err("DAGU_INVALID_VALUE", "must be a name or a list of names", path);
  }
  return list;
}

function positive(at, value, path) {
  if (!Number.isInteger(value) || value < 1) throw at.err("DAGU_INVALID_VALUE", "must be a whole number of at least 1", path);
  return value;
}

function whole(at, value, path) {
  if (!Number.isInteger(value) || value < 0) throw at.err("DAGU_INVALID_VALUE", "must be a whole number", path);
  return value;
}
