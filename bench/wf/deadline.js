// The approval workflow of bench/wf/approval.js with a deadline on its gate: denied by
// system:timeout an hour after it is requested (the timers section fires them all).
import { approvalThenTask } from "../workflows.js";

export default approvalThenTask(() => {}, { timeoutMs: 3_600_000, onTimeout: "deny" });
