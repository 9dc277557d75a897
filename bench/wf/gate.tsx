// A small workflow file for the CLI start-up figures (section 3), its outputs as JSON Schema;
// gate-zod.tsx is the same with zod. The workflow itself is in gate-shape.tsx.
import { approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { gateWorkflow } from "./gate-shape";

const number = { type: "number" };
export default gateWorkflow(
  createSmithers({
    compute: { type: "object", properties: { value: number }, required: ["value"] },
    gate: approvalDecisionSchema,
    after: { type: "object", properties: { doubled: number, approved: { type: "boolean" } }, required: ["doubled", "approved"] },
  }),
);
