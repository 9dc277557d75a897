// Workflows used by the benchmarks, built in plain JS (no .tsx step): createSmithers with
// plain JSON Schema objects, and smithers((ctx) => jsx(...)).
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
 * <Approval id="gate"> then a compute task "after". `onAfter(runId)` is called first thing in
 * the body of "after" (the approve -> downstream benchmark records performance.now() there).
 * @param {(runId: string) => void} [onAfter]
 */
export function approvalThenTask(onAfter = () => {}) {
  return smithers((ctx) =>
    jsx(Workflow, {
      name: "approval",
      children: jsx(Sequence, {
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
      }),
    }),
  );
}
