// `smithers-orchestrator/tools` (also `smithers-rs/tools`): the tools Smithers gives agents
// (read, write, edit, grep, bash) and `defineTool` to make more, as tools of the `ai`
// package. Every file path is confined to the task's root directory (no `..`, absolute path
// or symlink leads out), output is capped, processes run through the core's command runner
// with a timeout, and each call is recorded as an event of the run.
import { existsSync } from "node:fs";
import { lstat, mkdir, open, readFile, realpath, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";
import { DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_TOOL_TIMEOUT_MS } from "./agents/task.js";
import { getToolContext, getToolIdempotencyKey, nextToolSeq, runWithToolContext } from "./agents/context.js";
import { SmithersError } from "./errors.js";
import { runCommand } from "./native.js";

export { getToolContext, getToolIdempotencyKey, nextToolSeq, runWithToolContext };

let ai;
try {
  ai = await import("ai");
} catch (e) {
  if (e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
  throw new SmithersError(
    "AGENT_DEPENDENCY_MISSING",
    "smithers-orchestrator/tools makes tools for the `ai` package, which is not installed: npm install ai",
    { package: "ai" },
  );
}

export const BASH_TOOL_MAX_COMMAND_LENGTH = 8_192;
export const BASH_TOOL_MAX_ARGS = 128;
export const BASH_TOOL_MAX_ARG_LENGTH = 8_192;
export const BASH_TOOL_MAX_CWD_LENGTH = 1_024;
export const BASH_TOOL_MAX_OUTPUT_BYTES = 10 * 1024 * 1024;
export const BASH_TOOL_MAX_TIMEOUT_MS = 60 * 60 * 1000;

const METADATA = Symbol.for("smithers.tool.metadata");
/** What an event keeps of a tool's arguments. */
const EVENT_ARG_CHARS = 2_000;

/** The limits and root of the call in progress (a task's), or the defaults outside a run. */
function runtime() {
  const ctx = getToolContext();
  return {
    ctx,
    rootDir: ctx?.rootDir ?? process.cwd(),
    allowNetwork: ctx?.allowNetwork ?? false,
    maxOutputBytes: ctx?.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    timeoutMs: ctx?.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
  };
}

/**
 * The absolute path for `inputPath`, if it stays inside `rootDir`: lexically (no `..` or
 * absolute path outside it) and on disk (the nearest existing ancestor, symlinks resolved,
 * is inside the root resolved the same way).
 * @param {string} rootDir
 * @param {string} inputPath
 */
export async function resolveToolPath(rootDir, inputPath) {
  if (typeof inputPath !== "string" || inputPath === "" || inputPath.includes("\0")) {
    throw new SmithersError("TOOL_PATH_INVALID", "a path must be a non-empty string");
  }
  const root = resolve(rootDir);
  const target = isAbsolute(inputPath) ? resolve(inputPath) : resolve(root, inputPath);
  if (target !== root && !target.startsWith(root + sep)) {
    throw new SmithersError("TOOL_PATH_ESCAPE", `${inputPath} is outside the task's directory ${root}`, { path: inputPath, rootDir: root });
  }
  const realRoot = await realpath(root);
  for (let current = target; ; current = dirname(current)) {
    let real;
    try {
      real = await realpath(current);
    } catch (e) {
      if (e?.code !== "ENOENT" && e?.code !== "ENOTDIR") throw e;
      if (dirname(current) === current) break;
      continue;
    }
    if (real !== realRoot && !real.startsWith(realRoot + sep)) {
      throw new SmithersError("TOOL_PATH_ESCAPE", `${inputPath} leads outside the task's directory ${root} through a symlink`, {
        path: inputPath,
        rootDir: root,
      });
    }
    return target;
  }
  throw new SmithersError("TOOL_PATH_ESCAPE", `${inputPath} is outside the task's directory ${root}`, { path: inputPath, rootDir: root });
}

/** The first `maxBytes` of a text, cut on a character boundary, with a note of what was cut. */
export function truncateToBytes(text, maxBytes) {
  const buf = Buffer.from(text, "utf8");
  if (buf.length <= maxBytes) return text;
  const head = buf.subarray(0, maxBytes).toString("utf8").replace(/\uFFFD$/, "");
  return `${head}\n[… ${buf.length - maxBytes} more bytes not shown]`;
}

async function readHead(path, maxBytes) {
  const file = await open(path, "r");
  try {
    const buf = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await file.read(buf, 0, maxBytes + 1, 0);
    const { size } = await file.stat();
    return { text: buf.subarray(0, Math.min(bytesRead, maxBytes)).toString("utf8"), size };
  } finally {
    await file.close();
  }
}

/**
 * A process for a tool, through the core's runner: in its own process group, stopped at the
 * timeout, its output logged per call next to the run's logs (or in a temporary directory).
 */
async function runToolProcess(program, args, { cwd, timeoutMs, ctx, tool }) {
  const base =
    ctx?.logDir && ctx.runId
      ? join(ctx.logDir, ctx.runId, `${ctx.nodeId}.${ctx.iteration}.${ctx.attempt}.tool-${ctx.seq ?? 0}-${tool}`)
      : join(tmpdir(), `smithers-tool-${tool}-${randomUUID()}`);
  const stdoutPath = `${base}.stdout.log`;
  const stderrPath = `${base}.stderr.log`;
  const outcome = await runCommand({ program, args, cwd, env: [], timeoutMs, stdoutPath, stderrPath });
  if (outcome.spawnError) throw new SmithersError("TOOL_PROCESS_FAILED", `${tool}: ${outcome.spawnError}`, { program });
  if (outcome.timedOut) {
    throw new SmithersError("TOOL_TIMEOUT", `${tool}: ${program} timed out after ${timeoutMs} ms`, { program, timeoutMs });
  }
  return { ...outcome, stdoutPath, stderrPath };
}

/** stdout then stderr of a tool process, the first `maxBytes` of them. */
async function processOutput(outcome, maxBytes) {
  const out = outcome.stdoutTruncated ? (await readHead(outcome.stdoutPath, maxBytes)).text : outcome.stdout;
  const err = outcome.stderrTruncated ? (await readHead(outcome.stderrPath, maxBytes)).text : outcome.stderr;
  return truncateToBytes(`${out}${err}`, maxBytes);
}

/** Reads a file under the root: its first `maxOutputBytes`. */
export async function readFileTool(path) {
  const { rootDir, maxOutputBytes } = runtime();
  const resolved = await resolveToolPath(rootDir, path);
  const { text, size } = await readHead(resolved, maxOutputBytes);
  return size > maxOutputBytes ? `${text}\n[… ${size - maxOutputBytes} more bytes not shown]` : text;
}

/** Writes a file under the root (creating its directory). */
export async function writeFileTool(path, content) {
  const { rootDir, maxOutputBytes } = runtime();
  if (typeof content !== "string") throw new SmithersError("INVALID_INPUT", "content must be a string");
  const bytes = Buffer.byteLength(content, "utf8");
  if (bytes > maxOutputBytes) {
    throw new SmithersError("TOOL_CONTENT_TOO_LARGE", `content too large (${bytes} bytes, at most ${maxOutputBytes})`, { bytes });
  }
  const resolved = await resolveToolPath(rootDir, path);
  await mkdir(dirname(resolved), { recursive: true });
  // mkdir may have followed a symlink created meanwhile: check the final place again.
  await resolveToolPath(rootDir, resolved);
  await writeFile(resolved, content, "utf8");
  return "ok";
}

/** Applies a unified diff to a file under the root. */
export async function editFileTool(path, patch) {
  const { rootDir, maxOutputBytes } = runtime();
  if (typeof patch !== "string") throw new SmithersError("INVALID_INPUT", "patch must be a string");
  const bytes = Buffer.byteLength(patch, "utf8");
  if (bytes > maxOutputBytes) throw new SmithersError("TOOL_PATCH_TOO_LARGE", `patch too large (${bytes} bytes)`, { bytes });
  const resolved = await resolveToolPath(rootDir, path);
  const stat = await lstat(resolved);
  if (stat.size > maxOutputBytes) throw new SmithersError("TOOL_FILE_TOO_LARGE", `file too large to edit (${stat.size} bytes)`);
  const { applyPatch } = await import("diff");
  const updated = applyPatch(await readFile(resolved, "utf8"), patch);
  if (updated === false) throw new SmithersError("TOOL_PATCH_FAILED", `the patch does not apply to ${path}`);
  await writeFile(resolved, updated, "utf8");
  return "ok";
}

let ripgrep;
/** Searches files under the root with ripgrep when it is installed, else grep -rnE. */
export async function grepTool(pattern, path = ".") {
  const { ctx, rootDir, maxOutputBytes, timeoutMs } = runtime();
  if (typeof pattern !== "string" || pattern === "") throw new SmithersError("INVALID_INPUT", "pattern must be a non-empty string");
  const where = await resolveToolPath(rootDir, path);
  ripgrep ??= (process.env.PATH ?? "").split(":").some((dir) => dir && existsSync(join(dir, "rg")));
  const [program, args] = ripgrep ? ["rg", ["-n", "--", pattern, where]] : ["grep", ["-rnE", "--", pattern, where]];
  const outcome = await runToolProcess(program, args, { cwd: rootDir, timeoutMs, ctx, tool: "grep" });
  if (outcome.exitCode === 1) return ""; // no match
  if (outcome.exitCode !== 0) throw new SmithersError("TOOL_GREP_FAILED", outcome.stderr.trim() || `${program} failed`);
  return truncateToBytes(outcome.stdoutTruncated ? (await readHead(outcome.stdoutPath, maxOutputBytes)).text : outcome.stdout, maxOutputBytes);
}

const NETWORK_WORDS = ["curl", "wget", "http://", "https://", "npm", "bun", "pip"];
const GIT_REMOTE_WORDS = ["push", "pull", "fetch", "clone", "remote"];

/**
 * Runs a program (no shell, as Smithers' bash tool does) in the root or a directory under
 * it. Without network access, commands that obviously reach the network are refused, as in
 * Smithers; this is a guard against mistakes, not a sandbox.
 */
export async function bashTool(cmd, args = [], opts = undefined) {
  const { ctx, rootDir, allowNetwork, maxOutputBytes, timeoutMs } = runtime();
  if (typeof cmd !== "string" || cmd.trim() === "") throw new SmithersError("INVALID_INPUT", "cmd must be a non-empty string");
  if (!Array.isArray(args) || args.length > BASH_TOOL_MAX_ARGS || args.some((a) => typeof a !== "string" || a.length > BASH_TOOL_MAX_ARG_LENGTH)) {
    throw new SmithersError("INVALID_INPUT", `args must be at most ${BASH_TOOL_MAX_ARGS} strings of at most ${BASH_TOOL_MAX_ARG_LENGTH} characters`);
  }
  const line = [cmd, ...args].join(" ");
  if (line.length > BASH_TOOL_MAX_COMMAND_LENGTH) {
    throw new SmithersError("INVALID_INPUT", `the command exceeds ${BASH_TOOL_MAX_COMMAND_LENGTH} characters`);
  }
  if (opts?.cwd !== undefined && (typeof opts.cwd !== "string" || opts.cwd.length > BASH_TOOL_MAX_CWD_LENGTH)) {
    throw new SmithersError("INVALID_INPUT", "opts.cwd must be a path of at most 1024 characters");
  }
  if (!allowNetwork) {
    if (NETWORK_WORDS.some((w) => line.includes(w))) {
      throw new SmithersError("TOOL_NETWORK_DISABLED", "network access is disabled for the bash tool");
    }
    if (line.includes("git") && GIT_REMOTE_WORDS.some((w) => line.includes(w))) {
      throw new SmithersError("TOOL_GIT_REMOTE_DISABLED", "git remote operations are disabled for the bash tool");
    }
  }
  const cwd = opts?.cwd ? await resolveToolPath(rootDir, opts.cwd) : rootDir;
  const outcome = await runToolProcess(cmd, args, {
    cwd,
    timeoutMs: Math.min(timeoutMs, BASH_TOOL_MAX_TIMEOUT_MS),
    ctx,
    tool: "bash",
  });
  const output = await processOutput(outcome, Math.min(maxOutputBytes, BASH_TOOL_MAX_OUTPUT_BYTES));
  if (outcome.exitCode !== 0) {
    throw new SmithersError("TOOL_COMMAND_FAILED", `${cmd} exited with code ${outcome.exitCode}: ${output.slice(-2000)}`, {
      cmd,
      args,
      exitCode: outcome.exitCode,
    });
  }
  return output;
}

/** `{ name, sideEffect, idempotent }` of a tool made by defineTool, else null. */
export function getDefinedToolMetadata(value) {
  return value && typeof value === "object" ? (value[METADATA] ?? null) : null;
}

/** zod (or any Standard Schema) as it is; a plain JSON Schema through `ai`'s jsonSchema(). */
function inputSchemaOf(schema, name) {
  if (schema && typeof schema === "object" && ("~standard" in schema || "_zod" in schema || "jsonSchema" in schema)) return schema;
  if (schema && typeof schema === "object" && (schema.type === "object" || schema.properties)) return ai.jsonSchema(schema);
  throw new SmithersError("INVALID_ARGUMENT", `defineTool(${name}): schema must be a zod schema or a JSON Schema object`);
}

/**
 * A tool for `ai` agents whose every call is recorded in the run (ToolCallStarted,
 * ToolCallFinished with its duration, output size, and error) and gets the tool context as
 * its second argument (`ctx.idempotencyKey` is stable across retries of one task).
 * @param {{ name: string, description?: string, schema: any, sideEffect?: boolean, idempotent?: boolean,
 *   execute: (args: any, ctx: any) => unknown }} options
 */
export function defineTool(options) {
  if (!options || typeof options.name !== "string" || options.name === "" || typeof options.execute !== "function") {
    throw new SmithersError("INVALID_ARGUMENT", "defineTool({ name, schema, execute }): name and execute are required");
  }
  const sideEffect = options.sideEffect ?? false;
  const idempotent = options.idempotent ?? !sideEffect;
  const made = ai.tool({
    description: options.description ?? options.name,
    inputSchema: inputSchemaOf(options.schema, options.name),
    execute: async (args) => {
      const ctx = getToolContext();
      const seq = ctx ? nextToolSeq(ctx) : 0;
      const where = ctx ? { nodeId: ctx.nodeId, iteration: ctx.iteration, attempt: ctx.attempt, call: seq, tool: options.name } : null;
      const started = Date.now();
      if (where) ctx.emitEvent?.({ type: "ToolCallStarted", ...where, args: eventArgs(args), sideEffect });
      try {
        const result = await options.execute(args, {
          ...(ctx ?? { runId: "", nodeId: "", iteration: 0, attempt: 0, rootDir: process.cwd(), allowNetwork: false,
            maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES, timeoutMs: DEFAULT_TOOL_TIMEOUT_MS, seq: 0 }),
          idempotencyKey: getToolIdempotencyKey(ctx),
          toolName: options.name,
          sideEffect,
          idempotent,
        });
        if (where) {
          const size = Buffer.byteLength(typeof result === "string" ? result : (JSON.stringify(result) ?? ""), "utf8");
          ctx.emitEvent?.({ type: "ToolCallFinished", ...where, ok: true, durationMs: Date.now() - started, outputBytes: size });
        }
        return result;
      } catch (e) {
        if (where) {
          ctx.emitEvent?.({
            type: "ToolCallFinished",
            ...where,
            ok: false,
            durationMs: Date.now() - started,
            error: { code: e?.code ?? null, message: String(e?.message ?? e).slice(0, 2000) },
          });
        }
        throw e;
      }
    },
  });
  made[METADATA] = { name: options.name, sideEffect, idempotent };
  return made;
}

function eventArgs(args) {
  const text = JSON.stringify(args) ?? "null";
  return text.length > EVENT_ARG_CHARS ? `${text.slice(0, EVENT_ARG_CHARS)}…` : JSON.parse(text);
}

const object = (properties, required) => ({ type: "object", properties, required, additionalProperties: false });
const string = { type: "string" };

export const read = defineTool({
  name: "read",
  description: "Read a file",
  schema: object({ path: string }, ["path"]),
  execute: ({ path }) => readFileTool(path),
});

export const write = defineTool({
  name: "write",
  description: "Write a file",
  schema: object({ path: string, content: string }, ["path", "content"]),
  sideEffect: true,
  idempotent: false,
  execute: ({ path, content }, _ctx) => writeFileTool(path, content),
});

export const edit = defineTool({
  name: "edit",
  description: "Apply a unified diff patch to a file",
  schema: object({ path: string, patch: string }, ["path", "patch"]),
  sideEffect: true,
  idempotent: false,
  execute: ({ path, patch }, _ctx) => editFileTool(path, patch),
});

export const grep = defineTool({
  name: "grep",
  description: "Search for a pattern in files",
  schema: object({ pattern: string, path: string }, ["pattern"]),
  execute: ({ pattern, path }) => grepTool(pattern, path),
});

export const bash = defineTool({
  name: "bash",
  description: "Execute a shell command",
  schema: object(
    { cmd: string, args: { type: "array", items: string }, opts: object({ cwd: string }, []) },
    ["cmd"],
  ),
  sideEffect: true,
  idempotent: false,
  execute: ({ cmd, args, opts }, _ctx) => bashTool(cmd, args, opts),
});

export const tools = { read, write, edit, grep, bash };
