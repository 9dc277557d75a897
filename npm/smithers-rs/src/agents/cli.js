// Smithers' CLI agents (ClaudeCodeAgent, CodexAgent, GeminiAgent, PiAgent, KimiAgent,
// AmpAgent, ForgeAgent): each builds the command line of its CLI from the same options
// Smithers documents, and runs it as a child process through the core's command runner
// (its own process group, a timeout, an abort that stops the group, stdout/stderr logged
// per attempt next to the run's command logs).
import { join } from "node:path";
import { SmithersError } from "../errors.js";
import { cancelCommand, runCommand, writeCommandStdin } from "../native.js";
import { toJsonSchema } from "../schema.js";
import { getToolContext } from "./context.js";

// node:os only when an agent needs a temporary file (start-up: a workflow file imports the
// package index, which imports this module).
const tmpdir = () => process.getBuiltinModule("node:os").tmpdir();
// node:fs through getBuiltinModule: an ES import of it builds its whole namespace, which loads
// fs/promises and Node's streams (start-up: ARCHITECTURE.md).
const { closeSync, openSync, readSync, rmSync, writeFileSync } = process.getBuiltinModule("node:fs");
// Web Crypto's global: node:crypto loads on first use, not whenever the package is imported.
const randomUUID = () => crypto.randomUUID();

/** How much of a CLI's stdout is read back for its answer. */
const MAX_STDOUT_BYTES = 16 * 1024 * 1024;

/** `--flag value`, `--flag` for true, nothing for undefined/false. */
function pushFlag(args, flag, value) {
  if (value === undefined || value === null || value === false) return;
  if (value === true) args.push(flag);
  else args.push(flag, String(value));
}

/** The session a call asks to resume (Smithers' `resumeSession`), else the agent's own. */
const sessionOf = (options, fallback) => (typeof options?.resumeSession === "string" ? options.resumeSession : fallback);

/** `--flag a b c`, nothing for an empty list. */
function pushList(args, flag, values) {
  if (values?.length) args.push(flag, ...values.map(String));
}

/** Prompt text from `prompt` (a string or messages) or `messages`; system messages apart. */
export function extractPrompt(options) {
  const toText = (content) =>
    typeof content === "string"
      ? content
      : Array.isArray(content)
        ? content.map((p) => (typeof p === "string" ? p : (p?.text ?? p?.content ?? ""))).join("")
        : content == null
          ? ""
          : String(content);
  const fromMessages = (messages) => {
    const system = [];
    const parts = [];
    for (const m of messages) {
      const text = toText(m?.content);
      if (!text) continue;
      if (m.role === "system") system.push(text);
      else parts.push(m.role ? `${String(m.role).toUpperCase()}: ${text}` : text);
    }
    return { prompt: parts.join("\n\n"), systemFromMessages: system.length ? system.join("\n\n") : undefined };
  };
  if (!options || typeof options !== "object") return { prompt: "" };
  if ("prompt" in options) {
    if (typeof options.prompt === "string") return { prompt: options.prompt };
    if (Array.isArray(options.prompt)) return fromMessages(options.prompt);
    return { prompt: "" };
  }
  return Array.isArray(options.messages) ? fromMessages(options.messages) : { prompt: "" };
}

/** A `timeout` call option (ms, or `{ totalMs, idleMs }`) over the agent's own defaults. */
function resolveTimeouts(timeout, fallback) {
  if (typeof timeout === "number") return { totalMs: timeout, idleMs: fallback.idleMs };
  if (timeout && typeof timeout === "object") {
    return {
      totalMs: typeof timeout.totalMs === "number" ? timeout.totalMs : fallback.totalMs,
      idleMs: typeof timeout.idleMs === "number" ? timeout.idleMs : fallback.idleMs,
    };
  }
  return fallback;
}

/** The answer text inside a CLI's JSON or JSON-lines output. */
function textFromJsonValue(value) {
  if (typeof value === "string") return value;
  if (!value || typeof value !== "object") return undefined;
  if (typeof value.text === "string") return value.text;
  if (typeof value.content === "string") return value.content;
  if (Array.isArray(value.content)) {
    const parts = value.content.map((p) => (typeof p === "string" ? p : (p?.text ?? p?.content ?? ""))).join("");
    if (parts.trim()) return parts;
  }
  for (const key of ["response", "message", "result", "output", "data"]) {
    if (value[key]) return textFromJsonValue(value[key]);
  }
  return undefined;
}

function textFromJsonPayload(raw) {
  const trimmed = raw.trim();
  if (!trimmed) return undefined;
  let events;
  try {
    const whole = JSON.parse(trimmed);
    const text = textFromJsonValue(whole);
    if (text !== undefined) return text;
    events = [whole];
  } catch {
    // JSON lines, below
  }
  events ??= trimmed.split(/\r?\n/).flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return []; // a banner or a partial line
    }
  });
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    // Claude Code's final `result` event carries the whole answer.
    if (e?.type === "result" && typeof e.result === "string") return e.result;
    if ((e?.type === "turn_end" || e?.type === "message_end") && e.message?.role === "assistant") {
      const text = textFromJsonValue(e.message);
      if (text) return text;
    }
    if (e?.type === "agent_end" && Array.isArray(e.messages)) {
      const last = [...e.messages].reverse().find((m) => m?.role === "assistant");
      const text = last && textFromJsonValue(last);
      if (text) return text;
    }
    // Codex: the last agent message.
    if (e?.type === "item.completed" && e.item?.type === "agent_message" && typeof e.item.text === "string") return e.item.text;
  }
  const chunks = events.map(textFromJsonValue).filter(Boolean);
  return chunks.length ? chunks.join("") : undefined;
}

/** Token counts in a CLI's JSON-lines output (Claude's message events, Codex's turns, …). */
function usageFromOutput(raw) {
  const usage = {};
  let found = false;
  const add = (k, v) => {
    if (typeof v === "number" && v > 0) {
      usage[k] = (usage[k] ?? 0) + v;
      found = true;
    }
  };
  for (const line of raw.split(/\r?\n/)) {
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    if (!e || typeof e !== "object") continue;
    if (e.type === "result" && e.usage) continue; // a total that repeats the message events
    const u = e.type === "message_start" ? e.message?.usage : e.usage;
    if (!u || typeof u !== "object") continue;
    add("inputTokens", u.input_tokens ?? u.inputTokens ?? u.prompt_tokens);
    add("outputTokens", u.output_tokens ?? u.outputTokens ?? u.completion_tokens);
    add("cacheReadTokens", u.cache_read_input_tokens ?? u.cached_input_tokens ?? u.cacheReadTokens);
    add("cacheWriteTokens", u.cache_creation_input_tokens ?? u.cacheWriteTokens);
    add("reasoningTokens", u.reasoning_tokens ?? u.reasoningTokens);
  }
  return found ? usage : null;
}

function readHead(path, max) {
  let fd;
  try {
    fd = openSync(path, "r");
    const buf = Buffer.alloc(max);
    const n = readSync(fd, buf, 0, max, 0);
    return buf.subarray(0, n).toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const lastLine = (s) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .pop() ?? "";

/**
 * Runs a CLI as an agent: `generate(options)` as Smithers' AgentLike, answering with
 * `{ text, output, usage, totalUsage, steps, finishReason, response }`.
 */
export class BaseCliAgent {
  /** @param {Record<string, any>} [opts] */
  constructor(opts = {}) {
    this.opts = opts;
    this.id = opts.id ?? randomUUID();
    this.model = opts.model;
    this.systemPrompt = opts.systemPrompt ?? opts.instructions;
    this.cwd = opts.cwd;
    this.env = opts.env;
    this.yolo = opts.yolo ?? true;
    this.timeoutMs = opts.timeoutMs;
    this.idleTimeoutMs = opts.idleTimeoutMs;
    this.maxOutputBytes = opts.maxOutputBytes;
    this.extraArgs = opts.extraArgs;
    this.tools = {};
  }

  /**
   * @param {{ prompt: string, systemPrompt?: string, cwd: string, options: any }} _params
   * @returns {Promise<{ command: string, args: string[], stdin?: string, env?: Record<string, string>,
   *   outputFormat?: string, outputFile?: string, cleanup?: () => void,
   *   stdoutBannerPatterns?: RegExp[], stdoutErrorPatterns?: RegExp[], benignStderrPatterns?: RegExp[],
   *   errorOnBannerOnly?: boolean }>}
   */
  async buildCommand(_params) {
    throw new SmithersError("INVALID_AGENT", `${this.constructor.name} does not say which command to run`);
  }

  async generate(options = {}) {
    const { prompt, systemFromMessages } = extractPrompt(options);
    const timeouts = resolveTimeouts(options.timeout, { totalMs: this.timeoutMs, idleMs: this.idleTimeoutMs });
    const ctx = getToolContext();
    const cwd = this.cwd ?? options.rootDir ?? ctx?.rootDir ?? process.cwd();
    const system = [this.systemPrompt, systemFromMessages].filter((s) => typeof s === "string" && s.trim()).join("\n\n");
    const spec = await this.buildCommand({ prompt, systemPrompt: system || undefined, cwd, options });
    const logs = logPaths(ctx, this.cliEngine ?? spec.command);
    const cancelId = randomUUID();
    const signal = options.abortSignal;
    const onAbort = () => cancelCommand(cancelId);
    signal?.addEventListener("abort", onAbort, { once: true });
    let outcome;
    try {
      if (signal?.aborted) throw signal.reason ?? new SmithersError("AGENT_ABORTED", "the agent call was aborted");
      outcome = await runCommand({
        program: spec.command,
        args: spec.args,
        cwd,
        env: Object.entries({ ...this.env, ...spec.env }).map(([k, v]) => [k, String(v ?? "")]),
        timeoutMs: timeouts.totalMs ?? null,
        idleTimeoutMs: timeouts.idleMs ?? null,
        stdoutPath: logs.stdoutPath,
        stderrPath: logs.stderrPath,
        stdin: spec.stdin ?? null,
        cancelId,
      });
      if (ctx) ctx.logs = logs;
      if (outcome.spawnError) {
        throw new SmithersError("AGENT_CLI_NOT_STARTED", `${spec.command}: ${outcome.spawnError} (is ${spec.command} installed and on PATH?)`, {
          command: spec.command,
        });
      }
      if (outcome.cancelled) throw signal?.reason ?? new SmithersError("AGENT_ABORTED", `${spec.command} was stopped`);
      if (outcome.timedOut) {
        throw new SmithersError("TASK_TIMEOUT", `${spec.command} timed out after ${timeouts.totalMs ?? timeouts.idleMs} ms`, {
          command: spec.command,
        });
      }
      const full = outcome.stdoutTruncated ? readHead(logs.stdoutPath, MAX_STDOUT_BYTES) : outcome.stdout;
      const stdout = spec.outputFile ? readHead(spec.outputFile, MAX_STDOUT_BYTES) || full : full;
      if (outcome.exitCode !== 0) {
        let stderr = outcome.stderr;
        for (const p of spec.benignStderrPatterns ?? []) stderr = stderr.replace(new RegExp(p.source, p.flags), "");
        const why = lastLine(stderr) || lastLine(outcome.stdout) || `exited with code ${outcome.exitCode}`;
        throw new SmithersError("AGENT_CLI_ERROR", `${spec.command} exited with code ${outcome.exitCode}: ${why}`, {
          command: spec.command,
          exitCode: outcome.exitCode,
          stderrPath: logs.stderrPath,
        });
      }
      let cleaned = stdout;
      for (const p of spec.stdoutBannerPatterns ?? []) cleaned = cleaned.replace(new RegExp(p.source, p.flags), "");
      const raw = cleaned.trim();
      if (spec.errorOnBannerOnly && !raw && stdout.trim()) {
        throw new SmithersError("AGENT_CLI_ERROR", `${spec.command} printed only its banner, no answer`);
      }
      if (raw && !raw.startsWith("{") && !raw.startsWith("[")) {
        for (const p of spec.stdoutErrorPatterns ?? []) {
          if (new RegExp(p.source, p.flags).test(raw)) {
            throw new SmithersError("AGENT_CLI_ERROR", `${spec.command} reported an error: ${raw.slice(0, 500)}`);
          }
        }
      }
      const json = spec.outputFormat === "json" || spec.outputFormat === "stream-json";
      const text = json ? (textFromJsonPayload(raw) ?? raw) : raw;
      return cliResult(text, usageFromOutput(full), this.model ?? spec.command);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      try {
        spec.cleanup?.();
      } catch {
        // a temporary file that is already gone
      }
    }
  }
}

/** What a CLI agent's `generate` answers: the text (its JSON parsed as `output` when it is JSON) and usage. */
function cliResult(text, usage, modelId) {
  let output;
  if (/^\s*[[{]/.test(text)) {
    try {
      output = JSON.parse(text);
    } catch {
      output = undefined;
    }
  }
  return {
    text,
    output,
    usage: usage ?? undefined,
    totalUsage: usage ?? undefined,
    content: [{ type: "text", text }],
    steps: [],
    toolCalls: [],
    toolResults: [],
    finishReason: "stop",
    response: { id: randomUUID(), timestamp: new Date(), modelId, messages: [] },
  };
}

/**
 * Where a CLI agent's stdout/stderr go: next to the run's command logs, named after the
 * attempt (`<node>.<iteration>.<attempt>.<engine>[.N].stdout.log`), or a temporary
 * directory outside a run.
 */
function logPaths(ctx, engine) {
  const safe = String(engine).replace(/[^A-Za-z0-9_.-]/g, "_");
  if (ctx?.logDir && ctx.runId) {
    ctx.cliCalls = (ctx.cliCalls ?? 0) + 1;
    const n = ctx.cliCalls > 1 ? `.${ctx.cliCalls}` : "";
    const base = join(ctx.logDir, ctx.runId, `${ctx.nodeId}.${ctx.iteration}.${ctx.attempt}.${safe}${n}`);
    return { stdoutPath: `${base}.stdout.log`, stderrPath: `${base}.stderr.log` };
  }
  const base = join(tmpdir(), `smithers-${safe}-${randomUUID()}`);
  return { stdoutPath: `${base}.stdout.log`, stderrPath: `${base}.stderr.log` };
}

const withSystem = (system, prompt) => `${system ? `${system}\n\n` : ""}${prompt ?? ""}`;
const JSON_REMINDER =
  "\n\nREMINDER: Your response MUST end with a ```json code fence containing the required JSON object. Do NOT skip this step — the pipeline will reject your response without it.\n";

/** Claude Code (`claude --print`), stream-json output by default. */
export class ClaudeCodeAgent extends BaseCliAgent {
  cliEngine = "claude-code";

  constructor(opts = {}) {
    // A parent Claude Code session's variables make a nested one refuse to start; an API
    // key would switch it from the subscription to API billing (Smithers clears it too).
    const clear = {};
    for (const name of ["CLAUDE_CODE_ENTRYPOINT", "CLAUDECODE", "ANTHROPIC_API_KEY"]) if (process.env[name]) clear[name] = "";
    super(Object.keys(clear).length ? { ...opts, env: { ...clear, ...opts.env } } : opts);
  }

  async buildCommand({ prompt, systemPrompt, options }) {
    const o = this.opts;
    const args = ["--print"];
    const outputFormat = o.outputFormat ?? "stream-json";
    pushList(args, "--add-dir", o.addDir);
    pushFlag(args, "--agent", o.agent);
    if (o.agents) pushFlag(args, "--agents", typeof o.agents === "string" ? o.agents : JSON.stringify(o.agents));
    if (o.yolo ?? this.yolo) {
      args.push("--allow-dangerously-skip-permissions", "--dangerously-skip-permissions");
      if (!o.permissionMode) args.push("--permission-mode", "bypassPermissions");
    }
    pushFlag(args, "--allow-dangerously-skip-permissions", o.allowDangerouslySkipPermissions);
    pushFlag(args, "--dangerously-skip-permissions", o.dangerouslySkipPermissions);
    pushList(args, "--allowed-tools", o.allowedTools);
    pushFlag(args, "--append-system-prompt", o.appendSystemPrompt);
    pushList(args, "--betas", o.betas);
    pushFlag(args, "--chrome", o.chrome);
    pushFlag(args, "--no-chrome", o.noChrome);
    pushFlag(args, "--continue", o.continue);
    pushFlag(args, "--debug", o.debug);
    pushFlag(args, "--debug-file", o.debugFile);
    pushFlag(args, "--disable-slash-commands", o.disableSlashCommands);
    pushList(args, "--disallowed-tools", o.disallowedTools);
    pushFlag(args, "--fallback-model", o.fallbackModel);
    pushList(args, "--file", o.file);
    pushFlag(args, "--fork-session", o.forkSession);
    pushFlag(args, "--from-pr", o.fromPr);
    pushFlag(args, "--ide", o.ide);
    pushFlag(args, "--include-partial-messages", o.includePartialMessages);
    pushFlag(args, "--input-format", o.inputFormat);
    pushFlag(args, "--json-schema", o.jsonSchema);
    pushFlag(args, "--max-budget-usd", o.maxBudgetUsd);
    pushList(args, "--mcp-config", o.mcpConfig);
    pushFlag(args, "--mcp-debug", o.mcpDebug);
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--no-session-persistence", o.noSessionPersistence);
    pushFlag(args, "--output-format", outputFormat);
    pushFlag(args, "--permission-mode", o.permissionMode);
    pushList(args, "--plugin-dir", o.pluginDir);
    pushFlag(args, "--replay-user-messages", o.replayUserMessages);
    pushFlag(args, "--resume", sessionOf(options, o.resume));
    pushFlag(args, "--session-id", o.sessionId);
    pushFlag(args, "--setting-sources", o.settingSources);
    pushFlag(args, "--settings", o.settings);
    pushFlag(args, "--strict-mcp-config", o.strictMcpConfig);
    pushFlag(args, "--system-prompt", systemPrompt);
    if (o.tools === "" || o.tools === "default") args.push("--tools", o.tools);
    else pushList(args, "--tools", o.tools);
    // Recent Claude CLIs need --verbose with --print and stream-json.
    if (o.verbose || outputFormat === "stream-json") args.push("--verbose");
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    if (prompt) args.push(prompt);
    return { command: "claude", args, outputFormat };
  }
}

/** OpenAI Codex (`codex exec`), the prompt on stdin, JSON events, the last message in a file. */
export class CodexAgent extends BaseCliAgent {
  cliEngine = "codex";

  async buildCommand({ prompt, systemPrompt, options }) {
    const o = this.opts;
    const resume = sessionOf(options);
    const args = resume ? ["exec", "resume", resume] : ["exec"];
    for (const entry of codexConfig(o.config)) args.push("-c", entry);
    pushList(args, "--enable", o.enable);
    pushList(args, "--disable", o.disable);
    pushList(args, "--image", o.image);
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--oss", o.oss);
    pushFlag(args, "--local-provider", o.localProvider);
    pushFlag(args, "--sandbox", o.sandbox);
    pushFlag(args, "--profile", o.profile);
    if (o.fullAuto) args.push("--full-auto");
    else if ((o.yolo ?? this.yolo) || o.dangerouslyBypassApprovalsAndSandbox) args.push("--dangerously-bypass-approvals-and-sandbox");
    pushFlag(args, "--cd", o.cd);
    pushFlag(args, "--skip-git-repo-check", o.skipGitRepoCheck);
    pushList(args, "--add-dir", o.addDir);
    if (!resume) pushFlag(args, "--output-schema", o.outputSchema);
    pushFlag(args, "--color", o.color);
    args.push("--json");
    const temporary = [];
    if (!resume && !o.outputSchema && options?.outputSchema) {
      // The task's output schema, as Codex's structured output wants it.
      const schema = toJsonSchema(options.outputSchema, "outputSchema");
      delete schema.$schema;
      const file = join(tmpdir(), `smithers-schema-${randomUUID()}.json`);
      writeFileSync(file, JSON.stringify(openAiSchema(schema)));
      temporary.push(file);
      args.push("--output-schema", file);
    }
    const outputFile = o.outputLastMessage ?? join(tmpdir(), `smithers-codex-${randomUUID()}.txt`);
    if (!o.outputLastMessage) temporary.push(outputFile);
    args.push("--output-last-message", outputFile);
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    args.push("-");
    return {
      command: "codex",
      args,
      stdin: withSystem(systemPrompt, prompt),
      outputFile,
      outputFormat: "stream-json",
      stdoutBannerPatterns: [/^OpenAI Codex v[^\n]*$/gm],
      cleanup: () => {
        for (const f of temporary) rmSync(f, { force: true });
      },
    };
  }
}

/** `-c key=value` overrides from an object (values JSON unless plain) or a list. */
function codexConfig(config) {
  if (!config) return [];
  if (Array.isArray(config)) return config.map(String);
  return Object.entries(config).map(([k, v]) => `${k}=${v === null || typeof v !== "object" ? String(v) : JSON.stringify(v)}`);
}

/** OpenAI's structured output wants `type: "object"` beside `additionalProperties`, never `{}`. */
function openAiSchema(node) {
  if (Array.isArray(node)) return node.map(openAiSchema);
  if (!node || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = openAiSchema(v);
  if ("additionalProperties" in out && !("type" in out)) out.type = "object";
  if (out.additionalProperties && typeof out.additionalProperties === "object" && Object.keys(out.additionalProperties).length === 0) {
    out.additionalProperties = true;
  }
  return out;
}

/** Google's Gemini CLI, JSON output by default. */
export class GeminiAgent extends BaseCliAgent {
  cliEngine = "gemini";

  async buildCommand({ prompt, systemPrompt, options }) {
    const o = this.opts;
    const args = [];
    const outputFormat = o.outputFormat ?? (options?.onEvent ? "stream-json" : "json");
    pushFlag(args, "--debug", o.debug);
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--sandbox", o.sandbox);
    if (o.approvalMode) pushFlag(args, "--approval-mode", o.approvalMode);
    else if (o.yolo ?? this.yolo) args.push("--yolo");
    pushFlag(args, "--experimental-acp", o.experimentalAcp);
    pushList(args, "--allowed-mcp-server-names", o.allowedMcpServerNames);
    if (o.allowedTools !== undefined) {
      if (o.allowedTools.length === 0) args.push("--allowed-tools", "");
      else pushList(args, "--allowed-tools", o.allowedTools);
    }
    pushList(args, "--extensions", o.extensions);
    pushFlag(args, "--list-extensions", o.listExtensions);
    pushFlag(args, "--resume", sessionOf(options, o.resume));
    pushFlag(args, "--list-sessions", o.listSessions);
    pushFlag(args, "--delete-session", o.deleteSession);
    pushList(args, "--include-directories", o.includeDirectories);
    pushFlag(args, "--screen-reader", o.screenReader);
    pushFlag(args, "--output-format", outputFormat);
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    const reminder = prompt?.includes("REQUIRED OUTPUT") ? JSON_REMINDER : "";
    args.push("--prompt", `${withSystem(systemPrompt, prompt)}${reminder}`);
    return { command: "gemini", args, outputFormat };
  }
}

/** The pi coding agent: `--print` text, or `--mode json`. (Its RPC mode is not supported.) */
export class PiAgent extends BaseCliAgent {
  cliEngine = "pi";

  /** Smithers' resolveMode: "rpc" when asked, "json" for a caller that wants events, else the option. */
  modeFor(options) {
    if (this.opts.mode === "rpc") return "rpc";
    return options?.onEvent ? "json" : (this.opts.mode ?? "text");
  }

  async generate(options = {}) {
    if (this.modeFor(options) !== "rpc") return super.generate(options);
    if (this.opts.files?.length) {
      throw new SmithersError("AGENT_RPC_FILE_ARGS", "PiAgent: RPC mode does not take files (as in Smithers)", { option: "files" });
    }
    const { prompt } = extractPrompt(options);
    const ctx = getToolContext();
    const cwd = this.cwd ?? options.rootDir ?? ctx?.rootDir ?? process.cwd();
    const logs = logPaths(ctx, "pi");
    const answer = await runPiRpc({
      args: this.piArgs("rpc", prompt, options),
      cwd,
      env: Object.entries({ ...this.env }).map(([k, v]) => [k, String(v ?? "")]),
      prompt,
      timeouts: resolveTimeouts(options.timeout, { totalMs: this.timeoutMs, idleMs: this.idleTimeoutMs }),
      logs,
      signal: options.abortSignal,
      onExtensionUiRequest: this.opts.onExtensionUiRequest,
    });
    if (ctx) ctx.logs = logs;
    return cliResult(answer.text, answer.usage, this.opts.model ?? "pi");
  }

  async buildCommand({ prompt, options }) {
    const mode = this.modeFor(options);
    return { command: "pi", args: this.piArgs(mode, prompt, options), outputFormat: mode };
  }

  /** pi's command line, as Smithers builds it (the prompt last, in RPC mode too). */
  piArgs(mode, prompt, options) {
    const o = this.opts;
    const { systemFromMessages } = extractPrompt(options);
    const args = [];
    const session = sessionOf(options, o.session);
    if (mode === "text") {
      if (o.print !== false) args.push("--print");
    } else {
      args.push("--mode", mode);
    }
    pushFlag(args, "--provider", o.provider);
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--api-key", o.apiKey);
    pushFlag(args, "--system-prompt", this.systemPrompt);
    const append = [o.appendSystemPrompt, systemFromMessages].filter(Boolean).join("\n\n");
    pushFlag(args, "--append-system-prompt", append || undefined);
    pushFlag(args, "--continue", o.continue);
    pushFlag(args, "--resume", o.resume);
    pushFlag(args, "--session", session);
    pushFlag(args, "--session-dir", o.sessionDir);
    const durable = Boolean(options?.onEvent || session);
    if (!durable && (o.noSession ?? !(o.sessionDir || o.continue || o.resume))) args.push("--no-session");
    if (o.models) args.push("--models", Array.isArray(o.models) ? o.models.join(",") : o.models);
    if (o.listModels !== undefined && o.listModels !== false) {
      args.push("--list-models", ...(typeof o.listModels === "string" ? [o.listModels] : []));
    }
    pushFlag(args, "--export", o.export);
    if (o.tools?.length) args.push("--tools", o.tools.join(","));
    pushFlag(args, "--no-tools", o.noTools);
    for (const v of o.extension ?? []) args.push("--extension", v);
    pushFlag(args, "--no-extensions", o.noExtensions);
    for (const v of o.skill ?? []) args.push("--skill", v);
    pushFlag(args, "--no-skills", o.noSkills);
    for (const v of o.promptTemplate ?? []) args.push("--prompt-template", v);
    pushFlag(args, "--no-prompt-templates", o.noPromptTemplates);
    for (const v of o.theme ?? []) args.push("--theme", v);
    pushFlag(args, "--no-themes", o.noThemes);
    pushFlag(args, "--thinking", o.thinking);
    pushFlag(args, "--verbose", o.verbose);
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    if (mode !== "rpc") for (const f of o.files ?? []) args.push(`@${f}`);
    if (prompt) args.push(prompt);
    // pi gets --system-prompt from the agent's own option and the messages' system parts
    // in --append-system-prompt, as Smithers passes them.
    return args;
  }
}

/** How often the RPC transport reads what pi has written to its stdout log. */
const RPC_POLL_MS = 20;
/** Extension UI requests that wait for an answer; others (notify, status, …) do not. */
const BLOCKING_UI = new Set(["select", "confirm", "input", "editor"]);

/**
 * pi's RPC mode (`pi --mode rpc`, JSON lines on stdin and stdout), as Smithers speaks it:
 * a `prompt` command on stdin, kept open; the events pi prints are read from its stdout
 * log as they come; an extension's UI request is answered (by `onExtensionUiRequest`, or
 * cancelled when it waits for an answer); the answer is the last assistant message once pi
 * says `agent_end`, and pi (which runs on) is then stopped. pi runs through the core's
 * runner like every CLI agent: its own process group, the timeouts, the abort, the logs.
 */
async function runPiRpc({ args, cwd, env, prompt, timeouts, logs, signal, onExtensionUiRequest }) {
  const cancelId = randomUUID();
  const line = `${JSON.stringify({ id: randomUUID(), type: "prompt", message: prompt })}\n`;
  const state = { deltas: "", last: null, usage: null, error: null, done: false, stopped: false };
  const stop = () => {
    if (!state.stopped) {
      state.stopped = true;
      cancelCommand(cancelId);
    }
  };
  const onAbort = () => cancelCommand(cancelId);
  signal?.addEventListener("abort", onAbort, { once: true });
  let handling = Promise.resolve();
  const onEvent = (event) => {
    switch (event.type) {
      case "response":
        if (event.command === "prompt" && event.success === false) {
          state.error = typeof event.error === "string" ? event.error : "pi refused the prompt";
          stop();
        }
        break;
      case "message_update":
        if (event.assistantMessageEvent?.type === "text_delta" && typeof event.assistantMessageEvent.delta === "string") {
          state.deltas += event.assistantMessageEvent.delta;
        }
        break;
      case "message_end":
        if (event.message?.role === "assistant") {
          state.last = event.message;
          state.usage = addPiUsage(state.usage, event.message.usage);
          if (event.message.stopReason === "error" || event.message.stopReason === "aborted") {
            state.error = event.message.errorMessage || `pi's request ${event.message.stopReason}`;
          }
        }
        break;
      case "agent_end":
        state.done = true;
        stop();
        break;
      case "extension_ui_request":
        handling = handling.then(() => answerUiRequest(event, cancelId, onExtensionUiRequest)).catch((e) => {
          state.error = `onExtensionUiRequest failed: ${e?.message ?? e}`;
          stop();
        });
        break;
      default:
        break;
    }
  };
  let outcome;
  try {
    if (signal?.aborted) throw signal.reason ?? new SmithersError("AGENT_ABORTED", "the agent call was aborted");
    const running = runCommand({
      program: "pi",
      args,
      cwd,
      env,
      timeoutMs: timeouts.totalMs ?? null,
      idleTimeoutMs: timeouts.idleMs ?? null,
      stdoutPath: logs.stdoutPath,
      stderrPath: logs.stderrPath,
      stdin: line,
      keepStdinOpen: true,
      cancelId,
    });
    let ended = false;
    running.then(() => {
      ended = true;
    });
    const reader = await followLines(logs.stdoutPath, onEvent, () => ended || state.stopped);
    outcome = await running;
    await reader.drain();
    await handling;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (outcome.spawnError) {
    throw new SmithersError("AGENT_CLI_NOT_STARTED", `pi: ${outcome.spawnError} (is pi installed and on PATH?)`, { command: "pi" });
  }
  if (state.error) throw new SmithersError("AGENT_CLI_ERROR", `pi: ${state.error}`, { command: "pi", stderrPath: logs.stderrPath });
  if (outcome.timedOut) throw new SmithersError("TASK_TIMEOUT", `pi timed out after ${timeouts.totalMs ?? timeouts.idleMs} ms`, { command: "pi" });
  if (outcome.cancelled && !state.done) throw signal?.reason ?? new SmithersError("AGENT_ABORTED", "pi was stopped");
  if (!state.done && outcome.exitCode !== 0) {
    const why = lastLine(outcome.stderr) || `exited with code ${outcome.exitCode}`;
    throw new SmithersError("AGENT_CLI_ERROR", `pi exited before its answer: ${why}`, { command: "pi", exitCode: outcome.exitCode });
  }
  const text = (state.last && textFromJsonValue(state.last)) || state.deltas;
  return { text: text.trim(), usage: state.usage };
}

/** Answers one extension UI request on pi's stdin, as Smithers does. */
async function answerUiRequest(request, cancelId, handler) {
  const waits = BLOCKING_UI.has(request.method);
  if (!waits && !handler) return;
  let response = handler ? await handler(request) : null;
  if (!response && waits) response = { cancelled: true };
  if (!response) return;
  writeCommandStdin(cancelId, `${JSON.stringify({ ...response, type: "extension_ui_response", id: request.id })}\n`);
}

/** pi's usage (`{input, output, cacheRead, cacheWrite}`) added to the running total. */
function addPiUsage(total, u) {
  if (!u || typeof u !== "object") return total;
  const next = { ...(total ?? {}) };
  const add = (k, v) => {
    if (typeof v === "number" && Number.isFinite(v)) next[k] = (next[k] ?? 0) + v;
  };
  add("inputTokens", u.input ?? u.inputTokens);
  add("outputTokens", u.output ?? u.outputTokens);
  add("cacheReadTokens", u.cacheRead);
  add("cacheWriteTokens", u.cacheWrite);
  add("totalTokens", u.totalTokens);
  return Object.keys(next).length ? next : total;
}

/**
 * Calls `onEvent` with each JSON object line written to `path`, as it is written, until
 * `finished()` says so; `drain()` then reads what is left.
 */
async function followLines(path, onEvent, finished) {
  let offset = 0;
  let partial = "";
  const read = async () => {
    let file;
    try {
      // fs/promises on first use: only pi's RPC mode follows a file.
      file = await process.getBuiltinModule("node:fs").promises.open(path, "r");
    } catch {
      return; // not created yet
    }
    try {
      for (;;) {
        const buf = Buffer.alloc(64 * 1024);
        const { bytesRead } = await file.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        partial += buf.subarray(0, bytesRead).toString("utf8");
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) {
          let event;
          try {
            event = JSON.parse(l);
          } catch {
            continue; // not a protocol line
          }
          if (event && typeof event === "object" && !Array.isArray(event)) onEvent(event);
        }
      }
    } finally {
      await file.close();
    }
  };
  const loop = (async () => {
    while (!finished()) {
      await read();
      if (!finished()) await new Promise((r) => setTimeout(r, RPC_POLL_MS));
    }
  })();
  return {
    drain: async () => {
      await loop;
      await read();
    },
  };
}

/** Moonshot's Kimi CLI (`kimi --print`). */
export class KimiAgent extends BaseCliAgent {
  cliEngine = "kimi";

  async buildCommand({ prompt, systemPrompt, cwd, options }) {
    const o = this.opts;
    const args = ["--print"];
    const outputFormat = o.outputFormat ?? (options?.onEvent ? "stream-json" : "text");
    pushFlag(args, "--output-format", outputFormat);
    if (o.finalMessageOnly ?? outputFormat === "text") args.push("--final-message-only");
    const session = sessionOf(options, o.session ?? randomUUID());
    pushFlag(args, "--work-dir", o.workDir ?? cwd);
    pushFlag(args, "--session", session);
    pushFlag(args, "--continue", o.continue);
    pushFlag(args, "--model", o.model ?? this.model);
    args.push((o.thinking ?? true) ? "--thinking" : "--no-thinking");
    pushFlag(args, "--quiet", o.quiet);
    pushFlag(args, "--agent", o.agent);
    pushFlag(args, "--agent-file", o.agentFile);
    pushList(args, "--mcp-config-file", o.mcpConfigFile);
    pushList(args, "--mcp-config", o.mcpConfig);
    pushFlag(args, "--skills-dir", o.skillsDir);
    pushFlag(args, "--max-steps-per-turn", o.maxStepsPerTurn);
    pushFlag(args, "--max-retries-per-step", o.maxRetriesPerStep);
    pushFlag(args, "--max-ralph-iterations", o.maxRalphIterations);
    pushFlag(args, "--verbose", o.verbose);
    pushFlag(args, "--debug", o.debug);
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    const reminder = prompt?.includes("REQUIRED OUTPUT") ? JSON_REMINDER : "";
    pushFlag(args, "--prompt", `${withSystem(systemPrompt, prompt)}${reminder}`);
    return {
      command: "kimi",
      args,
      outputFormat,
      stdoutBannerPatterns: [/^YOLO mode is enabled\b[^\n]*/gm],
      stdoutErrorPatterns: [/^LLM not set/i, /^LLM not supported/i, /^Max steps reached/i, /^Interrupted by user$/i, /^Unknown error:/i, /^Error:/i],
      benignStderrPatterns: [/^\s*To resume this session: kimi -r [0-9a-f-]+\s*$/gim],
      errorOnBannerOnly: true,
    };
  }
}

/** Sourcegraph's Amp (`amp --execute`). */
export class AmpAgent extends BaseCliAgent {
  cliEngine = "amp";

  async buildCommand({ prompt, systemPrompt, options }) {
    const o = this.opts;
    const args = [];
    if (o.dangerouslyAllowAll || (o.yolo ?? this.yolo)) args.push("--dangerously-allow-all");
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--visibility", o.visibility);
    pushFlag(args, "--mcp-config", o.mcpConfig);
    pushFlag(args, "--settings-file", o.settingsFile);
    pushFlag(args, "--log-level", o.logLevel);
    pushFlag(args, "--log-file", o.logFile);
    args.push("--no-ide", "--no-jetbrains", "--no-color", "--archive");
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    args.push("--execute", withSystem(systemPrompt, prompt));
    const stream = Boolean(options?.onEvent);
    if (stream) args.push("--stream-json");
    return { command: "amp", args, outputFormat: stream ? "stream-json" : "text" };
  }
}

/** Forge (`forge --prompt`). */
export class ForgeAgent extends BaseCliAgent {
  cliEngine = "forge";

  async buildCommand({ prompt, systemPrompt, cwd, options }) {
    const o = this.opts;
    const args = [];
    pushFlag(args, "--model", o.model ?? this.model);
    pushFlag(args, "--provider", o.provider);
    pushFlag(args, "--agent", o.agent);
    const conversation = sessionOf(options, o.conversationId ?? randomUUID());
    pushFlag(args, "--conversation-id", conversation);
    pushFlag(args, "--sandbox", o.sandbox);
    pushFlag(args, "--restricted", o.restricted);
    pushFlag(args, "--verbose", o.verbose);
    pushFlag(args, "--workflow", o.workflow);
    pushFlag(args, "--event", o.event);
    pushFlag(args, "--conversation", o.conversation);
    pushFlag(args, "-C", o.directory ?? cwd);
    if (this.extraArgs?.length) args.push(...this.extraArgs);
    pushFlag(args, "--prompt", withSystem(systemPrompt, prompt));
    return { command: "forge", args, outputFormat: "text" };
  }
}
