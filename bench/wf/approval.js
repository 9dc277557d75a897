// Workflow file for the CLI benchmarks: <Approval id="gate"> then a compute task "after".
// `smithers approve <run>` (with resume) loads this file from the path recorded on the run.
import { approvalThenTask } from "../workflows.js";

export default approvalThenTask();
