// Types of `smithers-orchestrator/tools` (`smithers-rs/tools`): tools of the `ai` package.
// `Tool` is the shape `ai`'s tool() returns, declared here so these types do not need `ai`'s.

/** A tool as the `ai` package's agents take it. */
export interface Tool<Args = any, Result = unknown> {
  description?: string;
  inputSchema: unknown;
  execute?: (args: Args, options?: unknown) => Promise<Result>;
}

export interface ToolContext {
  runId: string;
  nodeId: string;
  iteration: number;
  attempt: number;
  /** Every path a tool takes is confined to this directory (the workflow's, by default). */
  rootDir: string;
  allowNetwork: boolean;
  maxOutputBytes: number;
  timeoutMs: number;
  /** Tool calls made so far in this attempt. */
  seq: number;
  logDir?: string | null;
  signal?: AbortSignal;
  idempotencyKey?: string | null;
  emitEvent?: (event: { type: string; [key: string]: unknown }) => void;
}
export interface DefinedToolContext extends ToolContext {
  /** `smithers:<run>:<node>:<iteration>`: the same across retries of one task. */
  idempotencyKey: string | null;
  toolName: string;
  sideEffect: boolean;
  idempotent: boolean;
}
export interface DefineToolOptions<Args, Result> {
  name: string;
  description?: string;
  /** A zod schema, or a JSON Schema object. */
  schema: unknown;
  sideEffect?: boolean;
  idempotent?: boolean;
  execute: (args: Args, ctx: DefinedToolContext) => Result | Promise<Result>;
}
export interface DefinedToolMetadata {
  name: string;
  sideEffect: boolean;
  idempotent: boolean;
}

/** A tool whose calls are recorded in the run (ToolCallStarted / ToolCallFinished). */
export declare function defineTool<Args = any, Result = unknown>(options: DefineToolOptions<Args, Result>): Tool<Args, Result>;
export declare function getDefinedToolMetadata(value: unknown): DefinedToolMetadata | null;

export declare const read: Tool<{ path: string }, string>;
export declare const write: Tool<{ path: string; content: string }, "ok">;
export declare const edit: Tool<{ path: string; patch: string }, "ok">;
export declare const grep: Tool<{ pattern: string; path?: string }, string>;
export declare const bash: Tool<{ cmd: string; args?: string[]; opts?: { cwd?: string } }, string>;
export declare const tools: { read: typeof read; write: typeof write; edit: typeof edit; grep: typeof grep; bash: typeof bash };

export declare function readFileTool(path: string): Promise<string>;
export declare function writeFileTool(path: string, content: string): Promise<"ok">;
export declare function editFileTool(path: string, patch: string): Promise<"ok">;
export declare function grepTool(pattern: string, path?: string): Promise<string>;
export declare function bashTool(cmd: string, args?: string[], opts?: { cwd?: string }): Promise<string>;
/** The absolute path, if it stays inside rootDir (lexically and through symlinks); else TOOL_PATH_ESCAPE. */
export declare function resolveToolPath(rootDir: string, inputPath: string): Promise<string>;
export declare function truncateToBytes(text: string, maxBytes: number): string;

export declare function runWithToolContext<T>(ctx: ToolContext, fn: () => T): T;
export declare function getToolContext(): ToolContext | undefined;
export declare function getToolIdempotencyKey(ctx?: ToolContext): string | null;
export declare function nextToolSeq(ctx: ToolContext): number;

export declare const BASH_TOOL_MAX_COMMAND_LENGTH: number;
export declare const BASH_TOOL_MAX_ARGS: number;
export declare const BASH_TOOL_MAX_ARG_LENGTH: number;
export declare const BASH_TOOL_MAX_CWD_LENGTH: number;
export declare const BASH_TOOL_MAX_OUTPUT_BYTES: number;
export declare const BASH_TOOL_MAX_TIMEOUT_MS: number;
