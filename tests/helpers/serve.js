// Helpers for tests of `smithers serve`: the real CLI as a child process on a port of its
// own, spoken to over loopback.
import { spawn } from "node:child_process";
import { BIN, REPO, sandbox } from "./cli.js";

/** A workflow named release whose two gates wait in parallel (security-review, qa-review). */
export const RELEASE_GATES_TSX = `/** @jsxImportSource smithers-orchestrator */
import { Approval, Parallel, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
const { Workflow, smithers, outputs } = createSmithers({ gate: approvalDecisionSchema });
export default smithers(() => (
  <Workflow name="release">
    <Parallel>
      <Approval id="security-review" output={outputs.gate} request={{ title: "Security sign-off for 2.0", summary: "CVE scan clean" }} />
      <Approval id="qa-review" output={outputs.gate} request={{ title: "QA sign-off for 2.0" }} />
    </Parallel>
  </Workflow>
));
`;

/**
 * A sandbox with `serve.json` (the given configuration) and `release.tsx`
 * (RELEASE_GATES_TSX), removed after the test: `{ box, config, file }`.
 * @param {import("node:test").TestContext} t
 */
export function releaseBox(t, serveConfig, prefix = "smithers-serve-") {
  const box = sandbox(prefix);
  t.after(() => box.cleanup());
  return { box, config: box.write("serve.json", JSON.stringify(serveConfig)), file: box.write("release.tsx", RELEASE_GATES_TSX) };
}

/**
 * Starts `smithers serve --port 0 --json` and resolves once it prints its address.
 * @param {{ db: string, cwd?: string, config?: string, env?: Record<string, string>, args?: string[] }} options
 */
export function startServe(options) {
  const args = [BIN, "serve", "--port", "0", "--json", "--db", options.db, ...(options.args ?? [])];
  if (options.config) args.push("--config", options.config);
  const { SMITHERS_DB: _db, SMITHERS_USER: _user, SMITHERS_TOKENS: _t, SMITHERS_API_KEY: _k, ...env } = process.env;
  const child = spawn(process.execPath, args, {
    cwd: options.cwd ?? REPO,
    env: { ...env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve did not start in 20 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 20_000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const line = stdout.split("\n")[0];
      if (!stdout.includes("\n")) return;
      clearTimeout(timer);
      let info;
      try {
        info = JSON.parse(line);
      } catch {
        reject(new Error(`serve printed ${stdout}`));
        return;
      }
      resolve({
        ...info,
        child,
        exited,
        stderr: () => stderr,
        /** SIGTERM, then the exit code (and how long it took). */
        async stop(signal = "SIGTERM") {
          const t0 = Date.now();
          if (child.exitCode === null) child.kill(signal);
          const r = await exited;
          return { ...r, ms: Date.now() - t0 };
        },
      });
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`serve exited ${code}\nstdout: ${stdout}\nstderr: ${stderr}`), { code, stdout, stderr }));
    });
  });
}

/**
 * A small client: `api(path, { method, body, token, headers })` → `{ status, body, headers }`.
 * @param {string} base the server's URL
 * @param {string} [defaultToken]
 */
export function client(base, defaultToken) {
  return async (path, options = {}) => {
    const headers = { ...(options.headers ?? {}) };
    const token = options.token === undefined ? defaultToken : options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(new URL(path, base), {
      method: options.method ?? (options.body !== undefined ? "POST" : "GET"),
      headers,
      body: options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body),
      redirect: "manual",
    });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, body, headers: res.headers };
  };
}

/** Reads a server-sent-event stream; `next(pred)` resolves with the first event matching it. */
export async function eventStream(url, token, headers = {}) {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...headers }, signal: controller.signal });
  const events = [];
  const waiters = [];
  const decoder = new TextDecoder();
  let buffer = "";
  (async () => {
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const data = frame.split("\n").find((l) => l.startsWith("data: "));
          const id = frame.split("\n").find((l) => l.startsWith("id: "));
          if (!data) continue;
          const event = { ...JSON.parse(data.slice(6)), sseId: id ? Number(id.slice(4)) : null };
          events.push(event);
          for (const w of [...waiters]) {
            if (w.pred(event)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(event);
            }
          }
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    events,
    next(pred, timeoutMs = 15_000) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => {
          const k = waiters.indexOf(w);
          if (k >= 0) {
            waiters.splice(k, 1);
            reject(new Error(`no matching event in ${timeoutMs} ms; got ${events.map((e) => `${e.runId}:${e.type}`).join(", ")}`));
          }
        }, timeoutMs).unref();
      });
    },
    close() {
      controller.abort();
    },
  };
}
