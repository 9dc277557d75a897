// Workflows used by the benchmarks, built in plain JS (no .tsx step): createSmithers with
// plain JSON Schema objects, and smithers((ctx) => jsx(...)).
import { appendFileSync } from "node:fs";
import { Approval, Parallel, Sequence, Task, approvalDecisionSchema, createSmithers } from "../npm/smithers-rs/src/index.js";
import { jsx } from "../npm/smithers-rs/src/jsx-runtime.js";

const valueSchema = {
  type: "object",
  properties: { i: { type: "integer" } },
  required: ["i"],
  additionalProperties: false,
};

const api = createSmithers({ value: valueSchema, gate: approvalDecisionSchema });
const { Workflow, smithers, outputs } = api;

function tasks(n, kind) {
  const children = new Array(n);
  for (let i = 0; i < n; i++) {
    const id = `t${i}`;
    const body = kind === "static" ? { i } : () => ({ i });
    children[i] = jsx(Task, { id, output: outputs.value, children: body }, id);
  }
  return children;
}

/**
 * @param {"static" | "compute"} kind task bodies: a static value, or a sync compute function
 * @param {"sequence" | "parallel"} shape
 * @param {number} n
 */
export function manyTasks(kind, shape, n) {
  const Container = shape === "parallel" ? Parallel : Sequence;
  return smithers(() =>
    jsx(Workflow, { name: `${shape}-${kind}-${n}`, children: jsx(Container, { children: tasks(n, kind) }) }),
  );
}

/**
 * A <Sequence> of n agent tasks, each asking `agent` for a value of the output schema.
 * @param {number} n
 * @param {{ generate: (args: any) => Promise<unknown> }} agent
 */
export function manyAgentTasks(n, agent) {
  const children = new Array(n);
  for (let i = 0; i < n; i++) {
    const id = `a${i}`;
    children[i] = jsx(Task, { id, output: outputs.value, agent, children: `Give the value of task ${i}.` }, id);
  }
  return smithers(() => jsx(Workflow, { name: `sequence-agent-${n}`, children: jsx(Sequence, { children }) }));
}

/**
 * <Approval id="gate"> then a compute task "after". `onAfter(runId)` is called first thing in
 * the body of "after" (the approve -> downstream benchmark records performance.now() there).
 * @param {(runId: string) => void} [onAfter]
 */
export function approvalThenTask(onAfter = () => {}, gateProps = {}) {
  return smithers((ctx) =>
    jsx(Workflow, {
      name: "approval",
      children: jsx(Sequence, {
        children: [
          jsx(Approval, { id: "gate", output: outputs.gate, request: { title: "Go on?" }, ...gateProps }, "gate"),
          jsx(
            Task,
            {
              id: "after",
              output: outputs.value,
              children: () => {
                onAfter(ctx.runId);
                return { i: 1 };
              },
            },
            "after",
          ),
        ],
      }),
    }),
  );
}

/**
 * A <Sequence> of `input.n` compute tasks; each body appends "t<i> <pid> <epoch ms>" to the
 * file `input.side` before it returns, so that a re-run of a task after a crash shows.
 */
export function sideEffectSequence() {
  return smithers((ctx) => {
    const { n, side } = ctx.input;
    const children = new Array(n);
    for (let i = 0; i < n; i++) {
      const id = `t${i}`;
      const body = () => {
        appendFileSync(side, `${id} ${process.pid} ${(performance.timeOrigin + performance.now()).toFixed(3)}\n`);
        return { i };
      };
      children[i] = jsx(Task, { id, output: outputs.value, children: body }, id);
    }
    return jsx(Workflow, { name: `recovery-${n}`, children: jsx(Sequence, { children }) });
  });
}

/**
 * A <Parallel> of two branches: <Approval id="gate"> then the compute task "after", and a compute
 * task "hold" whose body waits for `holdUntil(runId)`. While "hold" runs the driver keeps the run,
 * so a decision made by another process reaches it without a resume.
 * @param {(runId: string) => void} onAfter called first thing in the body of "after"
 * @param {(runId: string) => Promise<void>} holdUntil
 */
export function approvalBesideTask(onAfter, holdUntil) {
  return smithers((ctx) =>
    jsx(Workflow, {
      name: "approval-beside-task",
      children: jsx(Parallel, {
        children: [
          jsx(
            Sequence,
            {
              children: [
                jsx(Approval, { id: "gate", output: outputs.gate, request: { title: "Go on?" } }, "gate"),
                jsx(
                  Task,
                  {
                    id: "after",
                    output: outputs.value,
                    children: () => {
                      onAfter(ctx.runId);
                      return { i: 1 };
                    },
                  },
                  "after",
                ),
              ],
            },
            "branch",
          ),
          jsx(
            Task,
            {
              id: "hold",
              output: outputs.value,
              children: async () => {
                await holdUntil(ctx.runId);
                return { i: 2 };
              },
            },
            "hold",
          ),
        ],
      }),
    }),
  );
}

/**
 * A <Sequence> of n compute tasks whose render reads the previous task's output (the usual
 * Smithers shape: each step builds on the last). Every finished task changes an output the
 * render read, so the driver renders again after each one.
 * @param {number} n
 */
export function readingSequence(n) {
  return smithers((ctx) => {
    const children = new Array(n);
    for (let i = 0; i < n; i++) {
      const id = `t${i}`;
      const prev = i === 0 ? null : ctx.outputMaybe(outputs.value, { nodeId: `t${i - 1}` });
      const body = () => ({ i: prev ? prev.i + 1 : 0 });
      children[i] = jsx(Task, { id, output: outputs.value, children: body }, id);
    }
    return jsx(Workflow, { name: `reading-sequence-${n}`, children: jsx(Sequence, { children }) });
  });
}
