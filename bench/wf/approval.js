// Workflow file for the CLI runs: <Approval id="gate"> then a compute task "after".
// `smithers approve <run>` (with resume) loads this file from the path recorded on the run.
// When $BENCH_AFTER_FILE is set, the body of "after" appends "<runId> <epoch ms>" to it as it
// starts (the cross-process approve -> downstream figure reads it).
import { appendFileSync } from "node:fs";
import { approvalThenTask } from "../workflows.js";

export default approvalThenTask((runId) => {
  const at = performance.timeOrigin + performance.now();
  if (process.env.BENCH_AFTER_FILE) appendFileSync(process.env.BENCH_AFTER_FILE, `${runId} ${at.toFixed(3)}\n`);
});
