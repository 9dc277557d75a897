import type { SmithersElement, SmithersNode } from "./jsx-runtime.js";

import type {
  BindingApprovalCursor,
  BindingApprovalStatus,
  BindingApprovalSummary,
  BindingAttemptLog,
  BindingAuditEntry,
  BindingAuditReport,
  BindingDecisionOutcome,
  BindingFiredTimer,
  BindingNodeState,
  BindingNodeSummary,
  BindingRunError,
  BindingRunInspection,
  BindingRunStatus,
  BindingRunSummary,
  BindingTimer,
  Engine as BindingEngine,
} from "../binding.cjs";
export type { SmithersElement, SmithersNode } from "./jsx-runtime.js";
export { Fragment, createElement, jsx, jsxs } from "./jsx-runtime.js";

// ------------------------------------------------------------------ schemas

/** A JSON Schema object (draft 2020-12). */
export type JsonSchema = { [keyword: string]: unknown };

/** A JSON Schema that also carries the TypeScript type of the rows it describes. */
export type JsonSchemaOf<T> = JsonSchema & { readonly __output?: T };

/** zod 4 (or any Standard Schema with JSON Schema support), or a plain JSON Schema. */
export type SchemaLike = { readonly "~standard": unknown } | JsonSchema;

/** The row type a schema describes (zod's output type, or JsonSchemaOf's T). */
export type InferOutput<S> = S extends { readonly "~standard": { readonly types?: infer T } }
  ? NonNullable<T> extends { readonly output: infer O }
    ? O
    : Record<string, unknown>
  : S extends { readonly __output?: infer O }
    ? unknown extends O
      ? Record<string, unknown>
      : O
    : Record<string, unknown>;

export interface ApprovalDecision {
  approved: boolean;
  note: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
}
export interface ApprovalSelection {
  selected: string;
  notes: string | null;
}
export interface ApprovalRanking {
  ranked: string[];
  notes: string | null;
}
export declare const approvalDecisionSchema: JsonSchemaOf<ApprovalDecision>;
export declare const approvalSelectionSchema: JsonSchemaOf<ApprovalSelection>;
export declare const approvalRankingSchema: JsonSchemaOf<ApprovalRanking>;
/** `approvalDecisionSchema` plus the approver's `inputs` (for `<Approval input={[…]}>`). */
export declare const approvalDecisionWithInputsSchema: JsonSchemaOf<ApprovalDecision & { inputs?: Record<string, string> }>;
/** The output of a command task (unless `parse="json"`): exit code and stdout/stderr tails. */
export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}
export declare const commandResultSchema: JsonSchemaOf<CommandResult>;
/** The output of a task that runs a sub-workflow: the sub-run's id, status and outputs by node. */
export interface SubRunResult {
  subRunId: string;
  status: string;
  outputs: Record<string, Record<string, unknown>>;
}
export declare const subRunResultSchema: JsonSchemaOf<SubRunResult>;

/** Converts a schema to JSON Schema; throws SCHEMA_UNSUPPORTED (naming `key`) otherwise. */
/**
 * Exports the OpenTelemetry spans this process made so far (engines made with `tracing`):
 * waits at most `timeoutMs` (default: the OTLP export timeout, OTEL_EXPORTER_OTLP_TIMEOUT, else
 * 2 s), never throws. Call it before a service exits; the CLI does after every command.
 */
export declare function flushTraces(timeoutMs?: number): Promise<void>;
export declare function toJsonSchema(schemaLike: unknown, key: string, opts?: { kind?: "output" | "input" }): JsonSchema;

// ------------------------------------------------------------------ errors

export declare class SmithersError extends Error {
  constructor(code: string, message: string, details?: Record<string, unknown>);
  readonly code: string;
  readonly details: Record<string, unknown>;
}

// ------------------------------------------------------------------ ctx

export interface TableHandle<K extends string = string> {
  readonly __smithersTable: true;
  readonly key: K;
}

/** How an output table is named: its schema object, its key, or `tables.<key>`. */
export type OutputRef = object | string;

export type OutputRow<T> = T & { runId: string; nodeId: string; iteration: number };

type RowOf<Schemas, S> = S extends keyof Schemas
  ? InferOutput<Schemas[S]>
  : S extends TableHandle<infer K>
    ? K extends keyof Schemas
      ? InferOutput<Schemas[K]>
      : Record<string, unknown>
    : InferOutput<S>;

export interface OutputWhere {
  nodeId: string;
  /** Defaults to the current iteration of the loop the node belongs to (0 outside loops). */
  iteration?: number;
}

export type OutputsAccessor<Schemas> = (<S extends OutputRef>(table: S) => OutputRow<RowOf<Schemas, S>>[]) & {
  readonly [K in keyof Schemas]: OutputRow<InferOutput<Schemas[K]>>[];
};

export interface SmithersCtx<Schemas = Record<string, unknown>, Input = unknown> {
  runId: string;
  input: Input;
  /** Iteration of the first loop in the snapshot, 0 without loops. */
  iteration: number;
  iterations: Record<string, number>;
  outputMaybe<S extends OutputRef>(table: S, where: OutputWhere): OutputRow<RowOf<Schemas, S>> | undefined;
  /** Like outputMaybe, but throws MISSING_OUTPUT. */
  output<S extends OutputRef>(table: S, where: OutputWhere): OutputRow<RowOf<Schemas, S>>;
  latest<S extends OutputRef>(table: S, nodeId: string): OutputRow<RowOf<Schemas, S>> | undefined;
  iterationCount(table: OutputRef, nodeId: string): number;
  /** Every row of a table (a render that reads this re-renders after any node). */
  outputs: OutputsAccessor<Schemas>;
}

// ------------------------------------------------------------------ components

/** What a wait/failure handler function receives. */
export interface HandlerInfo {
  runId: string;
  status: RunStatus;
  waitingNodes?: string[];
  error?: RunError;
}

/** A handler as a command spec (what a Dagu DAG's `handler_on` compiles to). */
export interface HandlerCommand {
  command?: string;
  script?: string;
  shell?: string;
  cwd?: string;
  /** Extra variables, or a function of the run's ctx when the handler runs. */
  env?: Record<string, string> | ((ctx: any) => Record<string, string>);
  /** `[name, value]` pairs set first, their `${VAR}` references expanded. */
  envTemplates?: [string, string][];
  /** Substitute Dagu's own variables (DAG_NAME, DAG_WAITING_STEPS, …) into the text, as Dagu does. */
  daguText?: boolean;
}
export type Handler = string | HandlerCommand | ((info: HandlerInfo) => unknown);

export interface WorkflowProps {
  name?: string;
  /**
   * Runs each time the run starts waiting for a decision: a shell command (with
   * SMITHERS_WAITING_NODES / DAG_WAITING_STEPS, SMITHERS_RUN_ID and Dagu's DAG_* variables),
   * a command spec, or a function. Its failure is recorded as a HandlerFailed event and
   * changes nothing else.
   */
  onWait?: Handler;
  /** Runs once when the run finishes. */
  onSuccess?: Handler;
  /** Runs once when the run fails or is rejected (a task failed, a gate was denied or a step rejected). */
  onFailure?: Handler;
  /** Runs once when the run ends, whatever the end (after onSuccess / onFailure). */
  onExit?: Handler;
  children?: SmithersNode;
}
export interface SequenceProps {
  skipIf?: boolean;
  children?: SmithersNode;
}
export interface ParallelProps {
  id?: string;
  maxConcurrency?: number;
  skipIf?: boolean;
  children?: SmithersNode;
}
/** A parallel group that runs at most `maxConcurrency` of its tasks at a time (default 1). */
export interface MergeQueueProps {
  id?: string;
  /** Default 1: one task at a time. */
  maxConcurrency?: number;
  skipIf?: boolean;
  children?: SmithersNode;
}
/** Its tasks run in a git worktree at `path`, created before the first of them runs. */
export interface WorktreeProps {
  id?: string;
  /** The worktree's directory, relative to the workflow file's. */
  path: string;
  /** Created (or reset) at the base with `git worktree add -B`; none: a detached checkout. */
  branch?: string;
  /** Default "main" (then origin/<base>, then HEAD). */
  baseBranch?: string;
  skipIf?: boolean;
  children?: SmithersNode;
}
export interface BranchProps {
  if: unknown;
  then: SmithersNode;
  else?: SmithersNode;
  skipIf?: boolean;
}
export interface LoopProps {
  /** Default: named after its place in the tree (`loop:0.2`), the same at every render and resume. */
  id?: string;
  /** The loop ends once a render passes true. */
  until?: boolean;
  /** Default 5. */
  maxIterations?: number;
  /** Default "return-last". */
  onMaxReached?: "return-last" | "fail";
  skipIf?: boolean;
  children?: SmithersNode;
}

interface NodeProps<S> {
  id: string;
  output: S;
  dependsOn?: string[];
  /** Record of name -> node id; the ids are added to dependsOn. */
  needs?: Record<string, string>;
  label?: string;
  meta?: Record<string, unknown>;
  continueOnFail?: boolean;
}

/** The ctx a compute body receives: the render's ctx plus what reaches this task only. */
export interface TaskCtx {
  /** Approver inputs of the decided gates upstream of this task (and its own push-back's). */
  approvalInputs?: Record<string, string>;
  /** Set when a reviewer sent this step back: round, who, when, inputs, history. */
  pushBack?: PushBackInfo | null;
  [key: string]: unknown;
}
export interface PushBackInfo {
  /** The review round now running (Dagu's count of push-backs is this minus one). */
  iteration: number;
  /** Set when this task is in another step's push-back scope (that step's id). */
  gate?: string;
  by: string | null;
  at: string;
  inputs: Record<string, string>;
  note: string | null;
  previousStdoutFile: string | null;
  history: ReviewRound[];
}
/** One review round of a step, as the core records it (oldest first in `history`). */
export type ReviewRound = PendingApproval["history"][number];

export type TaskBody<T> = ((ctx: TaskCtx) => T | Promise<T>) | T;

/** approval={{…}} on a Task: it runs, then waits for a reviewer (Dagu-style). */
export interface ReviewOptions {
  prompt?: string;
  /** Names of the values a reviewer may send (environment variable names). */
  input?: string[];
  /** The inputs an approve must carry; a subset of `input`. */
  required?: string[];
  allowedUsers?: string[];
  allowedScopes?: string[];
  /**
   * Where a push-back restarts (Dagu's `rewind_to`): this task or one it depends on. That
   * task and everything downstream of it run again. Default: this task (and its dependents).
   */
  rewindTo?: string;
}

/**
 * A deadline on a gate, a review or a human task: when it passes undecided, `onTimeout` is
 * recorded as decided by `system:timeout` (the same row and events as a person's decision,
 * plus `ApprovalTimedOut`). Default `deny` (which then does what `onDeny` says); `fail` fails
 * the node whatever `onDeny` says. The earlier of `timeoutMs` and `deadline` counts.
 */
export interface DeadlineOptions {
  /** Milliseconds from when the gate is requested. */
  timeoutMs?: number;
  /** An absolute time (ISO 8601, a Date, or epoch milliseconds). */
  deadline?: string | Date | number;
  onTimeout?: "deny" | "approve" | "fail";
  /** Remind the approvers every `every` ("15m" or ms) while the gate waits, at most `max` times. */
  remind?: { every: string | number; max?: number };
  /** After `after` ("1h" or ms), these users (scopes) may decide too; an unrestricted list stays so. */
  escalate?: Array<{ after: string | number; allowedUsers?: string[]; allowedScopes?: string[] }>;
}

export interface ReviewOptions extends DeadlineOptions {}

/** `<Timer duration|until>`: the run waits, durably, with no process, until it fires. */
export interface TimerProps {
  id: string;
  /** "500ms", "30s", "2m", "1h", "7d" (a bare number is milliseconds). Exactly one of duration and until. */
  duration?: string;
  /** An absolute time (ISO 8601 or a Date); a past one fires at once. */
  until?: string | Date;
  skipIf?: boolean;
  dependsOn?: string[];
  needs?: Record<string, string>;
  label?: string;
  meta?: Record<string, unknown>;
  key?: string | number;
}

export interface TaskProps<S> extends NodeProps<S> {
  /**
   * A compute function (runs in the driver) or a static value; none with command/script/workflow.
   * With `agent`: the prompt (text, JSX, an MDX component), or a function of `deps` giving it.
   */
  children?: TaskBody<InferOutput<S>> | SmithersNode | ((deps: Record<string, any>) => SmithersNode);
  /** A shell command run by the core as a child process (`sh -c`). */
  command?: string;
  /** A multi-line shell script, run the same way. */
  script?: string;
  /** Working directory of command/script, relative to the workflow file. */
  cwd?: string;
  env?: Record<string, string | number | boolean>;
  /** Variables set before `env`, in order; their `${VAR}` references are expanded when the task runs. */
  envTemplates?: [string, string][];
  /** Default `/bin/sh`. */
  shell?: string;
  /** "json": stdout is parsed as the output. Default: `{exitCode, stdout, stderr}`. */
  parse?: "json" | "text";
  /**
   * Another workflow file, run as a sub-run; the output is `{subRunId, status, outputs}`. A
   * sub-run that waits for a decision of its own makes this task (and its run) wait with it.
   */
  workflow?: string;
  /** The sub-workflow's input (a function gets the TaskCtx, with approvalInputs). */
  input?: Record<string, unknown> | ((ctx: TaskCtx) => unknown);
  /** Review after the task ran: it waits with its output until approved, pushed back or rejected. */
  approval?: ReviewOptions | true;
  skipIf?: boolean;
  /** Extra attempts after a failure. Default 0. */
  retries?: number;
  /**
   * Outputs this task needs, `{ key: outputs.<table> }` (node `needs[key] ?? key`): the task
   * appears once each has a row, and a function child is called at render with the rows
   * (`({ key }) => value`); what it returns is the task's (static) output.
   */
  deps?: Record<string, OutputRef>;
  /** No retries (the default; contradicts retries > 0). */
  noRetry?: boolean;
  timeoutMs?: number | null;
  /** Wait for a human approval ("gate") before the body runs; an object gives it a deadline. */
  needsApproval?: boolean | DeadlineOptions;
  /** With needsApproval: while the gate waits, later siblings run; dependsOn still waits. */
  async?: boolean;
  /**
   * An agent task: the children are its prompt (text, JSX, an MDX component with props),
   * rendered to text when it runs; its answer's JSON is the output. A list is tried in
   * order on retries.
   */
  agent?: AgentLike | AgentLike[];
  /** One more agent, for the last retries. */
  fallbackAgent?: AgentLike;
  /** Agent tasks: passed to the agent as `outputSchema` (default: the output's schema object). */
  outputSchema?: unknown;
}

/** Anything with `generate(args)`: the `ai` package's ToolLoopAgent, a CLI agent, your own. */
export interface AgentLike {
  id?: string;
  tools?: Record<string, unknown>;
  generate(args: AgentGenerateArgs): Promise<unknown>;
}
/** What smithers-rs passes to `agent.generate`, as Smithers does. */
export interface AgentGenerateArgs {
  prompt: string;
  options?: undefined;
  abortSignal: AbortSignal;
  timeout?: { totalMs: number };
  rootDir: string;
  maxOutputBytes: number;
  outputSchema?: unknown;
  onStdout: (text: string) => void;
  onStderr: (text: string) => void;
}

/** Options of Smithers' CLI agents (the ones every CLI agent takes). */
export interface CliAgentOptions {
  id?: string;
  model?: string;
  systemPrompt?: string;
  instructions?: string;
  /** Where the CLI runs (default: the workflow's directory). */
  cwd?: string;
  env?: Record<string, string>;
  /** Skip the CLI's permission prompts (default true). */
  yolo?: boolean;
  timeoutMs?: number;
  /** Stop the CLI when it prints nothing for this long. */
  idleTimeoutMs?: number;
  maxOutputBytes?: number;
  extraArgs?: string[];
  [option: string]: unknown;
}
export declare class BaseCliAgent implements AgentLike {
  constructor(opts?: CliAgentOptions);
  id: string;
  model?: string;
  opts: CliAgentOptions;
  generate(args: Partial<AgentGenerateArgs> & { messages?: unknown[] }): Promise<{
    text: string;
    output: unknown;
    usage?: Record<string, number>;
    totalUsage?: Record<string, number>;
    finishReason: "stop";
  }>;
}
export declare class ClaudeCodeAgent extends BaseCliAgent {}
export declare class CodexAgent extends BaseCliAgent {}
export declare class GeminiAgent extends BaseCliAgent {}
export declare class PiAgent extends BaseCliAgent {}
export declare class KimiAgent extends BaseCliAgent {}
export declare class AmpAgent extends BaseCliAgent {}
export declare class ForgeAgent extends BaseCliAgent {}
/** A ToolLoopAgent of the `ai` package on `@ai-sdk/anthropic` (needs both installed). */
export declare class AnthropicAgent implements AgentLike {
  constructor(opts: { model: string | object; [setting: string]: unknown });
  generate(args: AgentGenerateArgs): Promise<unknown>;
}
/** A ToolLoopAgent of the `ai` package on `@ai-sdk/openai` (needs both installed). */
export declare class OpenAIAgent implements AgentLike {
  constructor(opts: { model: string | object; [setting: string]: unknown });
  generate(args: AgentGenerateArgs): Promise<unknown>;
}
/** An MDX (or any) component with props, rendered to the markdown text of a prompt. */
export declare function renderMdx(component: (props: any) => unknown, props?: Record<string, unknown>): string;

export interface ApprovalOption {
  key: string;
  label: string;
  summary?: string;
}

export interface ApprovalProps<S> extends NodeProps<S>, DeadlineOptions {
  request: { title: string; summary?: string | null; metadata?: Record<string, unknown> | null };
  /** Default "approve" (output like approvalDecisionSchema). */
  mode?: "approve" | "select" | "rank";
  /** Required for select and rank. */
  options?: ApprovalOption[];
  /**
   * What a denial does. Default (as Smithers' runtime): `approved: false` is recorded and the
   * run goes on; "continue" and "skip" do the same; "fail" fails the run.
   */
  onDeny?: "fail" | "continue" | "skip";
  allowedUsers?: string[];
  allowedScopes?: string[];
  /**
   * Decided by several people: approved once `approvals` distinct people approved; a denial
   * by one of `veto` denies it at once; with `from`, only they (and the veto holders) vote,
   * and it is denied once too few of them are left to approve. Each decision is one vote
   * (`status: "voted"` until the gate is decided); a second vote by one person is
   * ALREADY_VOTED. Approve/deny gates only.
   */
  quorum?: { approvals: number; from?: string[]; veto?: string[] };
  /** Names of the values an approver may send; they reach every downstream task. */
  input?: string[];
  /** The inputs an approve must carry; a subset of `input`. */
  required?: string[];
  /** While the gate waits, later siblings run; tasks naming it in dependsOn still wait. */
  async?: boolean;
  /** Decide without a person (by `smithers:auto`) when the conditions hold. */
  autoApprove?: AutoApprove;
  /** true: no node at all. */
  skipIf?: boolean;
}

export interface AutoApprove {
  /** Only once the last `after` decisions on this gate in earlier runs of the workflow were approvals by a person. */
  after?: number;
  /** Evaluated at render; false: a person decides this time. */
  condition?: (ctx: SmithersCtx<any, any>) => boolean;
  /** Keep the auto-approval in the approvals table (listings, inspect). Default true. */
  audit?: boolean;
  /** Evaluated at render; true: a person decides this time. */
  revertOn?: (ctx: SmithersCtx<any, any>) => boolean;
}

export interface HumanTaskProps<S> extends NodeProps<S>, DeadlineOptions {
  /** What the person is asked to fill in. */
  prompt: string;
  /** Answers that do not fit the output schema it takes before it fails. Default 10. */
  maxAttempts?: number;
  /** While it waits, later siblings run; tasks naming it in dependsOn still wait. */
  async?: boolean;
  /** true: no node at all. */
  skipIf?: boolean;
}

export interface ApprovalGateProps<S> extends NodeProps<S>, DeadlineOptions {
  request: ApprovalProps<S>["request"];
  /** true: a person decides; false: approved at once with a valid decision row. */
  when: boolean;
  onDeny?: "fail" | "continue" | "skip";
  skipIf?: boolean;
}

export interface EscalationLevel {
  agent: AgentLike | AgentLike[];
  output: OutputRef;
  label?: string;
  /** Called with the level's output row when its check runs; true: escalate to the next level. */
  escalateIf?: (result: any) => boolean;
}

export interface EscalationChainProps {
  /** Prefix of the node ids: <id>-level-<i>, <id>-check-<i>, <id>-human-fallback. Default "escalation". */
  id?: string;
  levels: EscalationLevel[];
  /** After the last level escalates, a person decides (an approval). */
  humanFallback?: boolean;
  humanRequest?: ApprovalProps<OutputRef>["request"];
  /** Holds each check's {escalated, fromLevel, toLevel} and the human fallback's decision. */
  escalationOutput: OutputRef;
  skipIf?: boolean;
  /** The prompt every level's agent answers. */
  children?: SmithersNode;
}

export interface RunbookStep {
  id: string;
  risk: "safe" | "risky" | "critical";
  /** The agent's prompt, or, without an agent, a shell command. */
  command?: string;
  agent?: unknown;
  label?: string;
  output?: OutputRef;
}

export interface RunbookProps {
  /** Prefix of the node ids. Default "runbook". */
  id?: string;
  steps: RunbookStep[];
  defaultAgent?: unknown;
  stepOutput: OutputRef;
  approvalRequest?: Partial<ApprovalProps<OutputRef>["request"]>;
  /** A denied risky or critical step: "fail" (default) fails the run, "skip" skips the step. */
  onDeny?: "fail" | "skip";
  skipIf?: boolean;
}

export declare function Workflow(props: WorkflowProps): SmithersElement;
export declare function Sequence(props: SequenceProps): SmithersElement;
export declare function Parallel(props: ParallelProps): SmithersElement;
export declare function Branch(props: BranchProps): SmithersElement;
export declare function Loop(props: LoopProps): SmithersElement;
export declare const Ralph: typeof Loop;
export declare function Task<S extends OutputRef>(props: TaskProps<S>): SmithersElement;
export declare function Approval<S extends OutputRef>(props: ApprovalProps<S>): SmithersElement;
/** Durably waits for `duration` or `until` (Smithers' `<Timer>`); writes no output. */
export declare function Timer(props: TimerProps): SmithersElement | null;
export interface WaitForEventProps<S> extends NodeProps<S> {
  /** The event's name: `smithers signal <run> <event> --data '<json>'`, `engine.signal(run, event, data)`. */
  event: string;
  /** Only a signal that names this correlationId is taken. */
  correlationId?: string;
  /** After this long without the event, the node fails (and the run unless continueOnFail). */
  timeoutMs?: number;
  onTimeout?: "fail";
  async?: boolean;
  skipIf?: boolean;
}
/** Durably waits until the event arrives; its payload (valid for the output's schema) is the output. */
export declare function WaitForEvent<S extends OutputRef>(props: WaitForEventProps<S>): SmithersElement | null;
/** `<WaitForEvent event={id} output={schema}>`; `children(data)` mount once the payload arrived. */
export declare function Signal<S extends OutputRef>(props: Omit<WaitForEventProps<S>, "event" | "output"> & { schema: S; children?: (data: any) => SmithersNode }): SmithersElement | null;
/** The run waits until a person submits JSON valid for the output schema (`smithers approve <run> <node> --note '<json>'`). */
export declare function HumanTask<S extends OutputRef>(props: HumanTaskProps<S>): SmithersElement;
/** An approval only when `when` is true; otherwise approved at once. */
export declare function ApprovalGate<S extends OutputRef>(props: ApprovalGateProps<S>): SmithersElement | null;
/** Steps in order: safe ones run, risky and critical ones wait for an approval first. */
export declare function Runbook(props: RunbookProps): SmithersElement | null;
/** Agent levels in order, each only when the one before failed or escalated; then, optionally, a person. */
export declare function EscalationChain(props: EscalationChainProps): SmithersElement | null;
/** A parallel group that runs one task at a time (or `maxConcurrency`). */
export declare function MergeQueue(props: MergeQueueProps): SmithersElement;
/** Its tasks run in a git worktree (created on first use). */
export declare function Worktree(props: WorktreeProps): SmithersElement;
/** The ctx of the render in progress; throws CTX_OUTSIDE_RENDER outside a render. */
export declare function useCtx<Schemas = Record<string, unknown>, Input = unknown>(): SmithersCtx<Schemas, Input>;

// ------------------------------------------------------------------ createSmithers

type OutputSchemas<Schemas> = Omit<Schemas, "input">;
type InputOf<Schemas> = Schemas extends { input: infer I } ? InferOutput<I> : unknown;

export interface SmithersWorkflow<Schemas = Record<string, unknown>> {
  readonly __smithersWorkflow: true;
  build(ctx: SmithersCtx<OutputSchemas<Schemas>, InputOf<Schemas>>): SmithersNode;
  schemas: Schemas;
  schemaKeys: Map<object, string | null>;
  /** Output table key -> JSON Schema (the input schema is not here). */
  jsonSchemas: Record<string, JsonSchema>;
  inputSchema: JsonSchema | null;
  dbPath: string | null;
  name: string | null;
  /** Set on workflows made by the builder or the TOON loader. */
  source?: "builder" | "toon";
  /** The .toon file a TOON workflow was loaded from. */
  file?: string;
  /** The folder relative paths in a TOON workflow resolve against (the file's). */
  baseDir?: string;
}

export interface CreateSmithersOptions {
  dbPath?: string;
}

export interface SmithersApi<Schemas> {
  Workflow: typeof Workflow;
  Sequence: typeof Sequence;
  Parallel: typeof Parallel;
  Branch: typeof Branch;
  Loop: typeof Loop;
  Ralph: typeof Loop;
  Task: typeof Task;
  Approval: typeof Approval;
  useCtx(): SmithersCtx<OutputSchemas<Schemas>, InputOf<Schemas>>;
  smithers(
    build: (ctx: SmithersCtx<OutputSchemas<Schemas>, InputOf<Schemas>>) => SmithersNode,
    opts?: CreateSmithersOptions,
  ): SmithersWorkflow<Schemas>;
  /**
   * The schemas themselves: each doubles as the output handle of its table. A schema object
   * under several keys gets a handle per key (it behaves as the schema), so
   * `outputs.securityReview` and `outputs.qaReview` name their own tables.
   */
  outputs: Schemas;
  tables: { readonly [K in keyof OutputSchemas<Schemas> & string]: TableHandle<K> };
}

export declare function createSmithers<const Schemas extends Record<string, SchemaLike>>(
  schemas: Schemas,
  opts?: CreateSmithersOptions,
): SmithersApi<Schemas>;

// ------------------------------------------------------------------ builder

/**
 * TOON field types: "string", "number", "boolean", literal unions ("'a' | 'b'"), "T[]",
 * "T?" (absent or null), nested blocks, and one-item lists of structs.
 */
export interface FieldMap {
  readonly [field: string]: FieldSpec;
}
export type FieldSpec = string | FieldMap | readonly [string | FieldMap];

type Trim<S extends string> = S extends ` ${infer R}` ? Trim<R> : S extends `${infer R} ` ? Trim<R> : S;
type Unquote<S extends string> = S extends `'${infer V}'` ? V : S extends `"${infer V}"` ? V : S;
type Literals<S extends string> = S extends `${infer A}|${infer B}` ? Unquote<Trim<A>> | Literals<B> : Unquote<Trim<S>>;
type ScalarOf<S extends string> = Trim<S> extends "string"
  ? string
  : Trim<S> extends "number"
    ? number
    : Trim<S> extends "boolean"
      ? boolean
      : Literals<S>;
/** The TypeScript type of one field type. */
export type FieldTypeOf<F> = F extends `${infer B}?`
  ? FieldTypeOf<B> | null | undefined
  : F extends `${infer B}[]`
    ? ScalarOf<B>[]
    : F extends string
      ? ScalarOf<F>
      : F extends readonly [infer I]
        ? FieldTypeOf<I>[]
        : F extends FieldMap
          ? FieldsOf<F>
          : unknown;
type OptionalKeys<M> = { [K in keyof M]: M[K] extends `${string}?` ? K : never }[keyof M];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** The row type of a field map: `T?` fields are optional. */
export type FieldsOf<M> = Simplify<
  { -readonly [K in Exclude<keyof M, OptionalKeys<M>>]: FieldTypeOf<M[K]> } & {
    -readonly [K in OptionalKeys<M>]?: FieldTypeOf<M[K]>;
  }
>;

/** A JSON Schema from TOON field types; throws INVALID_FIELD_TYPE. */
export declare function fields<const M extends FieldMap>(map: M): JsonSchemaOf<FieldsOf<M>>;

/** The output table key derived from a node id: `approve-deploy` -> `approveDeploy` (SQL `approve_deploy`). */
export declare function tableKeyFor(id: string): string;

/** A task or approval made by the builder; usable in `needs` and as a node. */
export interface StepHandle<Id extends string = string, T = unknown> {
  readonly kind: "task" | "approval";
  readonly id: Id;
  /** Type only: the output row of this node. */
  readonly __output?: T;
}
export interface TaskHandle<Id extends string = string, T = unknown> extends StepHandle<Id, T> {
  readonly kind: "task";
}
export interface ApprovalHandle<Id extends string = string> extends StepHandle<Id, ApprovalDecision> {
  readonly kind: "approval";
}
export interface ContainerNode {
  readonly kind: "sequence" | "parallel" | "branch" | "loop";
}
export type BuilderNode = StepHandle<string, any> | ContainerNode;

/** `{ alias: handle | "id" }`, or a list of handles / ids (then keyed by id). */
export type Needs =
  | { readonly [alias: string]: StepHandle<string, any> | string }
  | readonly (StepHandle<string, any> | string)[];
type NeedValue<H> = H extends StepHandle<any, infer T> ? OutputRow<T> : OutputRow<Record<string, unknown>>;
type NeedsValues<N> = N extends readonly unknown[]
  ? { [H in N[number] as H extends StepHandle<infer I, any> ? I : H extends string ? H : never]: NeedValue<H> }
  : { [K in keyof N]: NeedValue<N[K]> };

/** What every builder function receives, besides the outputs of its needs. */
export interface BuilderScope {
  /** The run's input (validated against the workflow's input schema). */
  input: any;
  ctx: SmithersCtx<any, any>;
  /** 1-based iteration of the enclosing loop; 0 outside loops. */
  loop: { iteration: number };
}
/** For `run` and a `request` function: every need has an output. */
export type BuilderDeps<N> = BuilderScope & NeedsValues<N>;
/** For conditions, evaluated at each render: needs without an output yet are undefined. */
export type BuilderMaybeDeps<N> = BuilderScope & Partial<NeedsValues<N>>;

export interface TaskOptions<S, N> {
  /** The output schema (zod 4, JSON Schema, or fields({...})). */
  output: S;
  /** Output table key; default tableKeyFor(id). */
  table?: string;
  needs?: N;
  run(deps: BuilderDeps<N>): InferOutput<S> | Promise<InferOutput<S>>;
  skipIf?: boolean | ((deps: BuilderMaybeDeps<N>) => unknown);
  /** Extra attempts after a failure (default 0); or give maxAttempts. */
  retries?: number;
  maxAttempts?: number;
  timeoutMs?: number;
  continueOnFail?: boolean;
  label?: string;
}

export interface ApprovalRequest {
  title: string;
  summary?: string | null;
}

export interface ApprovalOptions<N> {
  needs?: N;
  /** Static, or computed once every need has an output (until then the title is the id). */
  request: ApprovalRequest | ((deps: BuilderDeps<N>) => ApprovalRequest);
  /** Default "fail". */
  onDeny?: "fail" | "continue" | "skip";
  /** Table of the decision rows; default tableKeyFor(id). */
  table?: string;
  allowedUsers?: string[];
  allowedScopes?: string[];
  /** N distinct approvers; a veto holder's denial denies it (as `<Approval quorum>`). */
  quorum?: { approvals: number; from?: string[]; veto?: string[] };
}

export declare function task<const Id extends string, S extends SchemaLike, const N extends Needs = {}>(
  id: Id,
  options: TaskOptions<S, N>,
): TaskHandle<Id, InferOutput<S>>;
export declare function approval<const Id extends string, const N extends Needs = {}>(
  id: Id,
  options: ApprovalOptions<N>,
): ApprovalHandle<Id>;
/** Children run one after another (arrays are flattened; null/undefined/false are dropped). */
export declare function sequence(...children: (BuilderNode | readonly BuilderNode[] | null | undefined | false)[]): ContainerNode;
export declare function parallel(children: readonly BuilderNode[], options?: { maxConcurrency?: number }): ContainerNode;
export declare function branch<const N extends Needs = {}>(options: {
  needs?: N;
  if: boolean | ((deps: BuilderMaybeDeps<N>) => unknown);
  /** A node, or a list run in order. */
  then: BuilderNode | readonly BuilderNode[];
  else?: BuilderNode | readonly BuilderNode[];
}): ContainerNode;
export declare function loop<const N extends Needs = {}>(
  options: {
    id: string;
    needs?: N;
    /** Checked after each iteration; default false. */
    until?: boolean | ((deps: BuilderMaybeDeps<N>) => unknown);
    /** Default 5. */
    maxIterations?: number;
    /** Default "return-last". */
    onMaxReached?: "return-last" | "fail";
  },
  children: readonly BuilderNode[],
): ContainerNode;
/** A runnable workflow: `steps` run one after another. Pass it to SmithersEngine.start/run. */
export declare function workflow(options: {
  name: string;
  /** Input schema (zod 4, JSON Schema, or fields({...})). */
  input?: SchemaLike;
  steps: readonly BuilderNode[];
  dbPath?: string;
}): SmithersWorkflow<Record<string, JsonSchema>>;

// ------------------------------------------------------------------ TOON

/** Loads a .toon workflow file (loadWorkflow does this for paths ending in .toon). */
export declare function loadToonWorkflow(path: string): Promise<SmithersWorkflow<any>>;
/** Compiles TOON text; `file` names it in errors and anchors relative imports and handlers. */
export declare function compileToon(text: string, options?: { file?: string }): Promise<SmithersWorkflow<any>>;

/**
 * Loads a Dagu DAG (.yaml / .yml): parsed with the `yaml` package and compiled to the same
 * graph as JSX and TOON; every DAG it calls is loaded too. Errors have DAGU_* codes with
 * `details { file, line, key }`.
 */
export declare function loadDaguWorkflow(path: string): Promise<SmithersWorkflow<any>>;
/** Compiles DAG text; `file` names it in messages and anchors relative paths. */
export declare function compileDagu(text: string, options?: { file?: string }): SmithersWorkflow<any>;

// ------------------------------------------------------------------ render

export interface Snapshot {
  runId: string;
  input?: unknown;
  loops?: Record<string, number>;
  nodeLoops?: Record<string, string>;
  outputs?: SnapshotOutput[];
}

export interface SnapshotOutput {
  /** Schema key. */
  table: string;
  nodeId: string;
  iteration: number;
  /** The row's fields, camelCase as in the schema. */
  value: Record<string, unknown>;
}

export type PlanNode =
  | { kind: "sequence"; children: PlanNode[] }
  | { kind: "parallel"; maxConcurrency?: number; children: PlanNode[] }
  | { kind: "group"; children: PlanNode[] }
  | {
      kind: "loop";
      id: string;
      until: boolean;
      maxIterations: number;
      onMaxReached: "return-last" | "fail";
      children: PlanNode[];
    }
  | TaskNode;

export interface TaskNode {
  kind: "task";
  id: string;
  iteration: number;
  output: string;
  body:
    | { type: "static"; value: unknown }
    | { type: "compute" }
    | { type: "agent"; agent?: string | null }
    | { type: "approval" }
    | {
        type: "command";
        command?: string | null;
        script?: string | null;
        shell?: string | null;
        cwd?: string | null;
        env?: Record<string, string>;
        envTemplates?: [string, string][];
        parse?: "json" | null;
      };
  /** A reviewed step: it runs, then waits for a person to approve, reject or push it back. */
  review?: {
    prompt?: string | null;
    input?: string[];
    required?: string[];
    allowedUsers?: string[];
    allowedScopes?: string[];
    rewindTo?: string;
  };
  approval?: {
    mode: "gate" | "decision" | "select" | "rank" | "human";
    onDeny: "fail" | "continue" | "skip";
    request: { title: string; summary?: string | null; metadata?: object | null };
    options?: ApprovalOption[];
    allowedUsers?: string[];
    allowedScopes?: string[];
    async?: boolean;
    autoApprove?: { after?: number; audit: boolean; conditionMet?: boolean; revertOnMet?: boolean };
    maxAttempts?: number;
  };
  dependsOn?: string[];
  skip?: boolean;
  retries?: number;
  timeoutMs?: number | null;
  continueOnFail?: boolean;
  label?: string | null;
  meta?: object | null;
}

export interface GraphDescriptor {
  version: 1;
  workflow: { name: string };
  schemas: Record<string, JsonSchema>;
  renderDeps: string[] | "*";
  root: PlanNode;
}

export declare function renderWorkflow(
  workflow: SmithersWorkflow<any>,
  snapshot: Snapshot,
): {
  graph: GraphDescriptor;
  computeFns: Map<string, (...args: any[]) => unknown>;
  /** The render's ctx; compute bodies close over it. */
  ctx: SmithersCtx<any, any>;
  /** Add (upsert) a row produced after the render, so compute bodies that run later see it. */
  addOutput(row: SnapshotOutput): void;
};

/** Arguments for a compute body: the driver calls `fn(...computeArgs(ctx))`, i.e. `fn(ctx)`. */
export declare function computeArgs(ctx: SmithersCtx<any, any>): [SmithersCtx<any, any>];

// ------------------------------------------------------------------ loader

/** Installs the .ts/.tsx loader hooks once (also done by `import "smithers-rs/register"`). */
export declare function registerLoader(): void;
/**
 * Loads a workflow file: a .toon file is compiled; a .tsx/.ts/.jsx/.js file is imported and its
 * default export returned (INVALID_WORKFLOW if it is not a workflow).
 */
export declare function loadWorkflow(path: string): Promise<SmithersWorkflow<any>>;

// ---------------------------------------------------------------- Node API

// The shapes the engine returns are the binding's (`binding.d.cts`, generated by napi from
// the mirror types in crates/smithers-node/src/types.rs): named here, never written twice.
export type RunStatus = BindingRunStatus;
export type NodeState = BindingNodeState;
export type ApprovalStatus = BindingApprovalStatus;
export type RunError = BindingRunError;

/** Where a run stands when this process stops driving it. */
export interface RunResult {
  runId: string;
  status: RunStatus;
  error?: RunError;
  /** A sub-run that ended woke its caller, which this process resumed: where the caller stands. */
  caller?: RunResult;
}

export type RunSummary = BindingRunSummary;
export type PendingApproval = BindingApprovalSummary;
export type NodeSummary = BindingNodeSummary;
export type RunInspection = BindingRunInspection;
/** An attempt as the core keeps it: a command's exit code and logs, or an agent's call. */
export type AgentAttempt = BindingAttemptLog;
/** Where a page of `pendingApprovals` ended: the last row's sort key. */
export type ApprovalCursor = BindingApprovalCursor;
/** What `auditVerify` found: `broken` names the first entry altered or removed. */
export type AuditReport = BindingAuditReport;
/** An entry of the decision log, with its content (`data`) parsed. */
export type AuditEntry = Omit<BindingAuditEntry, "dataJson"> & { data: Record<string, unknown> };

export type EngineEventType =
  | "RunStarted" | "RunStatusChanged" | "RunFinished" | "RunFailed"
  | "NodeStarted" | "NodeFinished" | "NodeFailed" | "NodeRetrying" | "NodeSkipped" | "NodeCancelled" | "NodeAbandoned"
  | "NodeWaitingApproval" | "ApprovalRequested" | "ApprovalGranted" | "ApprovalDenied"
  | "ApprovalRejected" | "ApprovalPushedBack" | "ApprovalVoted" | "NodeRejected" | "NodePushedBack"
  | "HandlerStarted" | "HandlerFinished" | "HandlerFailed" | "WaitMailSent" | "WaitMailFailed"
  | "FailureMailSent" | "FailureMailFailed" | "RunRejected" | "NodeReset" | "NodeWaitingSubRun" | "NodeSubRunEnded"
  | "ToolCallStarted" | "ToolCallFinished" | "TokenUsageReported"
  | "LoopIteration" | "LoopFinished"
  | "NodeWaitingTimer" | "TimerScheduled" | "TimerFired" | "ApprovalTimedOut" | "ApprovalReminder" | "ApprovalEscalated";

export interface EngineEvent {
  runId: string;
  seq: number;
  /** Position in the database-wide order of events (`feed`). */
  feedId?: number;
  type: EngineEventType;
  timestampMs: number;
  nodeId?: string;
  iteration?: number;
  [field: string]: unknown;
}

export interface DecisionOptions {
  nodeId?: string;
  iteration?: number;
  note?: string;
  decidedBy?: string;
  /** Scopes the decider holds, checked against the gate's `allowedScopes`. */
  scopes?: string[];
  /** `{ selected }` for select gates, `{ ranked }` for rank gates, plus `notes`. */
  decision?: Record<string, unknown>;
  /** Approver inputs; only names the gate declares in `input` (else UNDECLARED_INPUT). */
  inputs?: Record<string, string>;
  /** Why a reviewed step is rejected (deny/reject). */
  reason?: string;
  /** Resume the run after recording (default true). */
  resume?: boolean;
  /** Override the engine's `forbidSelfApproval` for this decision. */
  forbidSelfApproval?: boolean;
  /**
   * The view digest the decider saw (an approval's `digest`, `sha256:…`): the decision is
   * refused with STALE_VIEW, nothing recorded, when the gate shows something else now (the
   * step was sent back and ran again, the gate was asked again). Without it, not checked.
   */
  expectDigest?: string;
  workflow?: SmithersWorkflow<any>;
}

export interface DecisionOutcome extends BindingDecisionOutcome {
  /**
   * Settles when the resumed run stops again; null when nothing was resumed here. If another
   * live process claimed the run first, it settles with `{ status: "running", owner }`: that
   * process picks the decision up.
   */
  done: Promise<RunResult & { owner?: string }> | null;
}

export interface StartOptions {
  input?: unknown;
  runId?: string;
  workflowPath?: string;
  /** Who starts the run; recorded, and refused as approver under `forbidSelfApproval`. */
  startedBy?: string;
}

/**
 * The native engine (binding.d.cts' `Engine`): every call that reads or writes the database has
 * a `<call>Async` twin, which on PostgreSQL (`remote`) returns a promise and leaves the JS thread
 * free while the engine's own thread waits on the network; on SQLite it is the synchronous call
 * and returns the value (typed as the promise: `await` it either way). Failures are
 * `SmithersError`s with the same codes, thrown or rejected; after `close()`, `ENGINE_CLOSED`.
 */
export type NativeEngine = BindingEngine & { readonly dbPath: string; readonly raw: BindingEngine; readonly remote: boolean };

export declare class SmithersEngine {
  /**
   * `forbidSelfApproval`: refuse an approve by the user who started the run (FORBIDDEN).
   * `mustExist`: a missing database is DB_NOT_FOUND, not a new file. `readOnly`: never write,
   * not even a migration (SCHEMA_OUTDATED on an older database). `leaseMs`: how long a claim
   * on a run lasts unless renewed (default $SMITHERS_LEASE_MS, else 30 000). `isolate`: drive
   * runs of workflow files in worker threads with a watchdog (RENDER_TIMEOUT,
   * WORKFLOW_BLOCKED, WORKFLOW_CRASHED), as `smithers serve` does. `onRender`: told when a
   * render starts and ends (`owned`: of a run this engine drives).
   */
  constructor(options?: {
    /** A SQLite file, or a PostgreSQL URL (`postgres://user@host/db?schema=name`). */
    database?: string;
    /** The same as `database` (its earlier name). */
    dbPath?: string;
    forbidSelfApproval?: boolean;
    mustExist?: boolean;
    readOnly?: boolean;
    leaseMs?: number;
    isolate?: boolean | { renderTimeoutMs?: number; blockedTimeoutMs?: number; maxWorkers?: number };
    onRender?: (rendering: boolean, owned: boolean) => void;
    log?: (line: string) => void;
    /**
     * Export OpenTelemetry spans of the runs this engine drives and the decisions it records
     * (a span per run, per node attempt, per decided approval; one trace per run across
     * processes), when the standard variables configure traces: OTEL_EXPORTER_OTLP_ENDPOINT or
     * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set (or OTEL_TRACES_EXPORTER=otlp), and
     * OTEL_TRACES_EXPORTER not `none`. Needs the optional peer dependencies @opentelemetry/api,
     * @opentelemetry/sdk-trace, @opentelemetry/resources and the exporter of the protocol
     * (README "Traces"). Off by default; the CLI turns it on.
     */
    tracing?: boolean;
  });
  static open(dbPath: string): SmithersEngine;
  readonly dbPath: string;
  readonly forbidSelfApproval: boolean;
  /** The native engine under this one (`native.js`): its calls throw `SmithersError`s. */
  readonly native: NativeEngine;
  /** Subscribe to events by type, or "*" for all; returns an unsubscribe function. */
  on(type: EngineEventType | "*", listener: (event: EngineEvent) => void): () => void;
  /** Start a run; `done` settles when this process stops driving it. */
  start(workflow: SmithersWorkflow<any> | string, options?: StartOptions): Promise<{ runId: string; done: Promise<RunResult> }>;
  run(workflow: SmithersWorkflow<any> | string, options?: StartOptions): Promise<RunResult>;
  /**
   * Records a run of a workflow file for another process (`smithers worker`, `smithers serve`)
   * to drive, without driving it: the run is `running` with no owner until a worker claims it.
   * WORKFLOW_NOT_FOUND when no file is given (a path, or `workflowPath` with an object).
   */
  enqueue(workflow: SmithersWorkflow<any> | string, options?: StartOptions): Promise<{ runId: string; status: "queued" }>;
  /**
   * Claims the run and drives it. A `workflow` (object or file path; `workflowPath` names an
   * object's file) whose workflow name is not the run's is WORKFLOW_MISMATCH unless `force`.
   */
  resume(runId: string, options?: { force?: boolean; workflow?: SmithersWorkflow<any> | string; workflowPath?: string; onlyIfReady?: boolean; onClaimed?: (snapshot: { runId: string; workflowName: string }) => void }): Promise<RunResult>;
  approve(runId: string, options?: DecisionOptions): Promise<DecisionOutcome>;
  /** Denies a gate (per onDeny) or rejects a reviewed step (the run ends rejected). */
  deny(runId: string, options?: DecisionOptions): Promise<DecisionOutcome>;
  reject(runId: string, options?: DecisionOptions): Promise<DecisionOutcome>;
  /** Sends a reviewed step back to run again with `inputs`; its review round counts up. */
  pushBack(runId: string, options?: DecisionOptions): Promise<DecisionOutcome>;
  /** Logs of the run's command tasks, per attempt, with their text. */
  logs(runId: string, filter?: { nodeId?: string; iteration?: number; attempt?: number; maxBytes?: number }): AttemptLog[];
  waitForRun(runId: string): Promise<RunResult>;
  /** Waiting approvals (or decided ones with `status`), oldest request first; page with `after`. */
  pendingApprovals(filter?: {
    runId?: string; workflowName?: string; nodeId?: string; limit?: number; offset?: number;
    status?: ApprovalStatus | "all";
    after?: ApprovalCursor;
  }): PendingApproval[];
  /** Events of every run after position `afterId` of the database-wide feed, in commit order. */
  feed(afterId?: number, limit?: number): EngineEvent[];
  feedHead(): number;
  /** Checks the decision log's hash chain; `broken` names the first entry altered or removed. */
  auditVerify(): AuditReport;
  /** Entries of the decision log after `afterSeq` (default 0), oldest first, at most `limit` (1000). */
  auditEntries(options?: { afterSeq?: number; limit?: number }): AuditEntry[];
  /**
   * Runs that are `running` while nobody holds them, oldest first; page with `after` (the last
   * run's `updatedAtMs` and `runId`). Runs marked unresumable are left out.
   */
  orphanedRuns(limit?: number, options?: { includeDead?: boolean; after?: { updatedAtMs: number; runId: string } }): (RunSummary & { updatedAtMs: number })[];
  /** Records why a run cannot be resumed (`why`, `resumeError`); claiming it clears that. */
  markUnresumable(runId: string, error: { code: string; message: string }): void;
  /**
   * The synchronous getters below (`listRuns`, `getRun`, `inspect`, `events`,
   * `pendingApprovals`, `feed`, …): on PostgreSQL each waits for its round trips on the calling
   * thread; `native.<call>Async` reads the same without blocking it.
   */
  listRuns(filter?: { status?: RunStatus; workflowName?: string; limit?: number; resumeFailed?: boolean }): RunSummary[];
  getRun(runId: string): RunSummary;
  inspect(runId: string): RunInspection;
  events(runId: string, options?: { afterSeq?: number; limit?: number }): EngineEvent[];
  cancel(runId: string): { runId: string; status: RunStatus };
  /**
   * The getters' twins that never wait on the calling thread: on PostgreSQL the read runs on
   * the engine's own thread (a service keeps serving meanwhile); on SQLite they answer as the
   * synchronous getters do. `smithers serve` reads through them.
   */
  listRunsAsync(filter?: { status?: RunStatus; workflowName?: string; limit?: number; resumeFailed?: boolean }): Promise<RunSummary[]>;
  getRunAsync(runId: string): Promise<RunSummary>;
  inspectAsync(runId: string): Promise<RunInspection>;
  pendingApprovalsAsync(filter?: Parameters<SmithersEngine["pendingApprovals"]>[0]): Promise<PendingApproval[]>;
  cancelAsync(runId: string): Promise<{ runId: string; status: RunStatus }>;
  logsAsync(runId: string, filter?: { nodeId?: string; iteration?: number; attempt?: number; maxBytes?: number }): Promise<AttemptLog[]>;
  /**
   * Fires the durable timers due now (each once, whoever races for it); runs a fire woke and
   * nobody drives are resumed here unless `resume: false`.
   */
  fireDueTimers(options?: { resume?: boolean }): Promise<{ fired: BindingFiredTimer[]; resumed: RunResult[] }>;
  /** Sends event `name` to the run's `<WaitForEvent>` / `<Signal>` waiting for it; its payload is the output. */
  signal(runId: string, name: string, data: unknown, options?: { correlationId?: string; decidedBy?: string; resume?: boolean }): Promise<DecisionOutcome & { done: Promise<RunResult> | null }>;
  /**
   * Keeps one wake-up armed for the earliest due timer (unref'd), firing and resuming then;
   * with `resume: false` a fire only records (a worker claims the woken runs as ready work).
   */
  startTimers(options?: { resume?: boolean }): void;
  stopTimers(): void;
  /** Re-reads the earliest due time (after another process scheduled a timer). */
  armTimers(): void;
  /**
   * Stays with a run that waits only on timers (`waiting-timer`: its own, or those of the
   * sub-runs it waits on) until it stops otherwise.
   */
  waitOnTimers(result: RunResult, onWait?: (dueAtMs: number) => void): Promise<RunResult>;
  /**
   * After `fireDueTimers({ resume: false })`: resumes the sub-runs of `runId` (any depth) a
   * fire woke that nobody drives; a sub-run that ends resumes its caller.
   */
  resumeWokenSubRuns(runId: string, fired: BindingFiredTimer[]): Promise<RunResult[]>;
  close(): void;
}

/** A command task's attempt (or an agent's), with the tails of its logs. */
export interface AttemptLog extends AgentAttempt {
  stdout: string;
  stderr: string;
}

export declare function engineVersion(): string;
/** How the native addon was compiled. */
export declare function engineBuild(): "debug" | "release";

/** A durable timer's row (`engine.native.runTimers(runId)`). */
export type DurableTimer = BindingTimer;
