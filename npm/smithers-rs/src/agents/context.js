// The context of an agent call, visible to the tools the agent calls and to CLI agents:
// which run, node and attempt it belongs to, the root directory tools are confined to,
// their limits, where logs go, and how to record an event of the run. It travels with the
// call through AsyncLocalStorage, so parallel agent tasks each see their own.
import { AsyncLocalStorage } from "node:async_hooks";

const storage = new AsyncLocalStorage();

/**
 * @typedef {{ runId: string, nodeId: string, iteration: number, attempt: number,
 *   rootDir: string, allowNetwork: boolean, maxOutputBytes: number, timeoutMs: number,
 *   seq: number, logDir?: string | null, signal?: AbortSignal,
 *   idempotencyKey?: string | null,
 *   emitEvent?: (event: { type: string, [k: string]: unknown }) => void }} ToolContext
 */

/**
 * @template T
 * @param {ToolContext} ctx
 * @param {() => T} fn
 * @returns {T}
 */
export function runWithToolContext(ctx, fn) {
  return storage.run(ctx, fn);
}

/** @returns {ToolContext | undefined} */
export function getToolContext() {
  return storage.getStore();
}

/** `smithers:<run>:<node>:<iteration>`, stable across retries of one task, or null outside a run. */
export function getToolIdempotencyKey(ctx = getToolContext()) {
  if (!ctx) return null;
  if (typeof ctx.idempotencyKey === "string" && ctx.idempotencyKey.length > 0) return ctx.idempotencyKey;
  if (!ctx.runId || !ctx.nodeId) return null;
  return `smithers:${ctx.runId}:${ctx.nodeId}:${ctx.iteration ?? 0}`;
}

/** The next tool call number of this attempt. */
export function nextToolSeq(ctx) {
  ctx.seq = (ctx.seq ?? 0) + 1;
  return ctx.seq;
}
