// Built-in components are markers: render.js recognises them by identity and turns them
// into plan nodes. They are never called; user components are plain functions of props.
import { SmithersError } from "./errors.js";

let currentCtx = null;

/** Set by the renderer for the duration of a render; returns the previous value. */
export function setCurrentCtx(ctx) {
  const prev = currentCtx;
  currentCtx = ctx;
  return prev;
}

/** The ctx of the render in progress (for user components that do not receive it). */
export function useCtx() {
  if (currentCtx === null) {
    throw new SmithersError("CTX_OUTSIDE_RENDER", "useCtx() can only be called while a workflow renders");
  }
  return currentCtx;
}

function marker(name, tag) {
  const component = {
    [name]() {
      throw new SmithersError("INVALID_ELEMENT", `<${name}> is rendered by smithers-rs; use it in JSX, do not call it`);
    },
  }[name];
  component.__smithersTag = tag;
  return component;
}

export const Workflow = marker("Workflow", "workflow");
export const Sequence = marker("Sequence", "sequence");
export const Parallel = marker("Parallel", "parallel");
export const Branch = marker("Branch", "branch");
export const Loop = marker("Loop", "loop");
export const Ralph = Loop;
export const Task = marker("Task", "task");
export const Approval = marker("Approval", "approval");
/** A task whose output a person submits: the run waits for JSON valid for its schema. */
export const HumanTask = marker("HumanTask", "human");
/** A parallel group that runs at most `maxConcurrency` tasks at a time (default 1). */
export const MergeQueue = marker("MergeQueue", "merge-queue");
/** Children run in a git worktree at `path` (created on first use, on `branch`). */
export const Worktree = marker("Worktree", "worktree");

/** Durably waits for `duration` ("500ms", "30s", "2h", "7d") or `until` (ISO time or Date). */
export const Timer = marker("Timer", "timer");
/** Durably waits until an event named `event` is sent to the run (`smithers signal`); its payload is the output. */
export const WaitForEvent = marker("WaitForEvent", "wait-for-event");

/** tag -> component, so the renderer can check identity (one runtime instance). */
export const BUILTINS = new Map(
  [Workflow, Sequence, Parallel, Branch, Loop, Task, Approval, HumanTask, MergeQueue, Worktree, Timer, WaitForEvent].map((c) => [c.__smithersTag, c]),
);
