// `GET /metrics` of `smithers serve`: Prometheus' text exposition format (version 0.0.4).
//
// Gauges are counted in the database at each scrape (the core's `storeMetrics`: two GROUP BY
// queries), so they cover every process that shares it. Histograms are fed by the database-wide
// event feed the watcher tails (every process's events, in commit order) and count from the
// moment this serve process started, as Prometheus counters do:
//   smithers_runs{workflow,status}                              gauge
//   smithers_pending_approvals{workflow}                        gauge
//   smithers_oldest_pending_approval_age_seconds{workflow}      gauge
//   smithers_approval_decision_wait_seconds{decision}           histogram: requested → decided
//   smithers_task_duration_seconds{outcome}                     histogram: task handed out → its result recorded
//   smithers_runs_ended_total{status}                           counter
// Timer lag is left out until the core has timers (issue 15): a metric that is always zero
// would say something false.

const DECISION_BUCKETS = [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600];
const TASK_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600];
const DECISIONS = { ApprovalGranted: "approved", ApprovalDenied: "denied", ApprovalRejected: "rejected", ApprovalPushedBack: "pushed-back" };
const TASK_ENDS = { NodeFinished: "finished", NodeFailed: "failed", NodeRetrying: "retrying" };
/** Events that end a run, by the status it ends in (a cancel is a RunStatusChanged). */
const RUN_ENDS = { RunFinished: "finished", RunFailed: "failed", RunRejected: "rejected" };
/** Tasks whose start was seen and whose end was not (yet): bounded, oldest dropped first. */
const MAX_OPEN_TASKS = 100_000;

class Histogram {
  constructor(buckets) {
    this.buckets = buckets;
    /** label value → { counts per bucket, sum, count } */
    this.series = new Map();
  }

  observe(label, value) {
    let s = this.series.get(label);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(label, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i] += 1;
    s.sum += value;
    s.count += 1;
  }

  /** Exposition lines; `labelName` names the one label of every series. */
  lines(name, labelName) {
    const out = [];
    for (const [label, s] of [...this.series].sort(([a], [b]) => a.localeCompare(b))) {
      const l = `${labelName}="${escapeLabel(label)}"`;
      this.buckets.forEach((le, i) => out.push(`${name}_bucket{${l},le="${le}"} ${s.counts[i]}`));
      out.push(`${name}_bucket{${l},le="+Inf"} ${s.count}`, `${name}_sum{${l}} ${round(s.sum)}`, `${name}_count{${l}} ${s.count}`);
    }
    return out;
  }
}

const escapeLabel = (v) => String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const round = (v) => Number(v.toFixed(6));

export class Metrics {
  constructor() {
    this.decisionWait = new Histogram(DECISION_BUCKETS);
    this.taskDuration = new Histogram(TASK_BUCKETS);
    /** status → runs that ended so */
    this.runsEnded = new Map();
    /** `run\0node\0iteration\0attempt` → when the core handed the task out (ms) */
    this.openTasks = new Map();
    this.startedAt = Date.now();
  }

  /** Feeds events from the database-wide feed (the watcher's onEvents). */
  onEvents(events) {
    for (const e of events) {
      if (e.type === "NodeStarted") {
        if (this.openTasks.size >= MAX_OPEN_TASKS) this.openTasks.delete(this.openTasks.keys().next().value);
        this.openTasks.set(taskKey(e), e.timestampMs);
      } else if (TASK_ENDS[e.type]) {
        const key = taskKey(e);
        const started = this.openTasks.get(key);
        if (started !== undefined) {
          this.openTasks.delete(key);
          this.taskDuration.observe(TASK_ENDS[e.type], Math.max(0, e.timestampMs - started) / 1000);
        }
      } else if (DECISIONS[e.type] && typeof e.waitedMs === "number") {
        this.decisionWait.observe(DECISIONS[e.type], Math.max(0, e.waitedMs) / 1000);
      } else if (RUN_ENDS[e.type]) {
        const status = RUN_ENDS[e.type];
        this.runsEnded.set(status, (this.runsEnded.get(status) ?? 0) + 1);
      } else if (e.type === "RunStatusChanged" && e.status === "cancelled") {
        this.runsEnded.set("cancelled", (this.runsEnded.get("cancelled") ?? 0) + 1);
      }
    }
  }

  /**
   * The exposition text.
   * @param {import("../../binding.cjs").BindingStoreMetrics} store the core's storeMetrics
   * @param {number} [now] epoch ms
   */
  render(store, now = Date.now()) {
    const out = [];
    const family = (name, type, help, lines) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    family(
      "smithers_runs",
      "gauge",
      "Runs in the database, by workflow and status.",
      store.runs.map((r) => `smithers_runs{workflow="${escapeLabel(r.workflow)}",status="${escapeLabel(r.status)}"} ${r.count}`),
    );
    family(
      "smithers_pending_approvals",
      "gauge",
      "Approval gates and reviews waiting for a decision, by workflow.",
      store.pendingApprovals.map((p) => `smithers_pending_approvals{workflow="${escapeLabel(p.workflow)}"} ${p.count}`),
    );
    family(
      "smithers_oldest_pending_approval_age_seconds",
      "gauge",
      "How long the oldest waiting approval of each workflow has waited.",
      store.pendingApprovals.map((p) => `smithers_oldest_pending_approval_age_seconds{workflow="${escapeLabel(p.workflow)}"} ${round(Math.max(0, now - p.oldestRequestedAtMs) / 1000)}`),
    );
    family(
      "smithers_approval_decision_wait_seconds",
      "histogram",
      "Time from an approval's request to its decision, for decisions recorded since this serve process started.",
      this.decisionWait.lines("smithers_approval_decision_wait_seconds", "decision"),
    );
    family(
      "smithers_task_duration_seconds",
      "histogram",
      "Time from a task being handed out to its result being recorded, for tasks started since this serve process started.",
      this.taskDuration.lines("smithers_task_duration_seconds", "outcome"),
    );
    family(
      "smithers_runs_ended_total",
      "counter",
      "Runs that finished, failed, were rejected or were cancelled since this serve process started.",
      [...this.runsEnded].map(([status, n]) => `smithers_runs_ended_total{status="${status}"} ${n}`),
    );
    family("process_start_time_seconds", "gauge", "When this serve process started (Unix time).", [`process_start_time_seconds ${round(this.startedAt / 1000)}`]);
    return `${out.join("\n")}\n`;
  }
}

const taskKey = (e) => `${e.runId}\u0000${e.nodeId}\u0000${e.iteration ?? 0}\u0000${e.attempt ?? 0}`;
