// gate.tsx with zod schemas, as Smithers workflows write them (section 3 also measures what
// importing zod alone costs).
import { approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";
import { gateWorkflow } from "./gate-shape";

export default gateWorkflow(
  createSmithers({
    compute: z.object({ value: z.number() }),
    gate: approvalDecisionSchema,
    after: z.object({ doubled: z.number(), approved: z.boolean() }),
  }),
);
