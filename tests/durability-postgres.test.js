// The durability tests (kill -9 mid-task and at a wait, racing approvers and resumers, a
// decision while another live process drives the run) on PostgreSQL: every process — the
// CLI's, the Node API's — talks to a server of this file's own (helpers/postgres.js), each test
// in a schema of its own.
process.env.SMITHERS_TEST_STORE = "postgres";
await import("./durability.test.js");
