// Figures for the peer, Smithers 0.32 (`smithers-orchestrator` 0.32.0 on bun 1.4.5), measured
// earlier on this machine. Source: /work/shared/reference/peer-smithers.md (section 3).
// Medians unless said. These are reference figures, not a live side-by-side run.
export const PEER_SOURCE = "/work/shared/reference/peer-smithers.md";
export const PEER_NAME = "Smithers 0.32 (smithers-orchestrator 0.32.0, bun 1.4.5)";

export const PEER = {
  // (c) N trivial compute tasks, engine time (finished_at - started_at) per node, ms
  seqComputeMsPerNode: { 10: 57.5, 100: 31.5, 1000: 51.5 },
  parComputeMsPerNode: { 10: 47.9, 100: 22.7, 1000: 44.8 },
  // (c) whole `smithers up` process for the N = 1000 runs
  seqCompute1000ProcessMs: 52900,
  seqCompute1000PeakRssMb: 1058,
  parCompute1000ProcessMs: 46100,
  parCompute1000PeakRssMb: 1151,
  // (a) CLI processes
  bunFloorMs: 8,
  bunFloorRssMb: 20.7,
  versionMs: 735,
  versionRssMb: 138,
  approveSmallDbMs: 668,
  approveRssMb: 146,
  approve1000DbMs: 803, // `smithers approve` (records only) in a DB with 1000+ runs, n = 10
  psFewRunsMs: 777,
  psRssMb: 144,
  // (d) 1000 parked runs
  psDefault1000DbMs: 774, // default `smithers ps` (20 rows) in the 1000-run DB
  psList1000Ms: 2373, // `ps --status waiting-approval --limit 1000 --format json`
  psList1000RssMb: 196,
  startToApprovalMsPerRun: 282, // in-process runWorkflow until it parks, p50
  // (b) approve -> downstream
  approveThenResumeCliMs: 1964, // `approve` process + `up --resume` process, to downstream persisted
  inProcessResumeMsP50: 317, // runWorkflow({resume:true}) after the approval, to the run's end, p50
};
