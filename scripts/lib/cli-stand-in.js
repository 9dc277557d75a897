#!/usr/bin/env node
// A stand-in for the coding-agent CLIs Smithers' CLI agents run (claude, codex, gemini, pi,
// kimi, amp, forge): `cli-stand-in.js <cli> [its arguments…]`. It finds the prompt where
// that CLI takes it (an argument, --prompt, --execute, or stdin), answers with JSON for the
// schema of smithers' REQUIRED OUTPUT block, and prints it in the CLI's output format.
// Install it on PATH as `<cli>` (see installCliStandIns). With STANDIN_LOG set, each call
// appends `{cli, args, stdin, cwd}` to that file as one JSON line; STANDIN_SLEEP_MS makes it
// wait before answering, STANDIN_EXIT makes it fail with that exit code.
//
// `pi --mode rpc` speaks pi's RPC protocol (JSON lines: commands on stdin, responses and
// events on stdout) and, like pi, keeps running after its answer until it is stopped: a
// turn that runs a tool, then the answer turn, then `agent_end`. STANDIN_UI_REQUEST=<method>
// makes it ask an extension UI request first and wait for the response (logged);
// STANDIN_RPC_FAIL=<message> makes it refuse the prompt.
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { schemaFromPrompt, valueForSchema } from "./anthropic-stand-in.js";

export const CLIS = ["claude", "codex", "gemini", "pi", "kimi", "amp", "forge"];

/** Writes `<dir>/<cli>` wrappers that run this stand-in; put `dir` first on PATH. */
export function installCliStandIns(dir) {
  mkdirSync(dir, { recursive: true });
  const self = fileURLToPath(import.meta.url);
  for (const cli of CLIS) {
    const path = join(dir, cli);
    writeFileSync(path, `#!/bin/sh\nexec "${process.execPath}" "${self}" ${cli} "$@"\n`);
    chmodSync(path, 0o755);
  }
  return dir;
}

const after = (args, flag) => {
  const i = args.lastIndexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};

function answerText(prompt) {
  const schema = schemaFromPrompt(prompt);
  const value = schema ? valueForSchema(schema) : { answer: "done" };
  return `Done.\n\n\`\`\`json\n${JSON.stringify(value, null, 2)}\n\`\`\``;
}

const log = (entry) => process.env.STANDIN_LOG && appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify(entry)}\n`);
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

/** pi's RPC mode: answers each `prompt` command with pi's events, and runs on. */
function piRpc(args) {
  log({ cli: "pi", args, cwd: process.cwd() });
  const waiting = new Map();
  const usage = (text) => ({ input: 20, output: Math.ceil(text.length / 4), cacheRead: 0, cacheWrite: 0, totalTokens: 20 + Math.ceil(text.length / 4) });
  const assistant = (content, text) => ({ role: "assistant", content, usage: usage(text), stopReason: "stop" });
  createInterface({ input: process.stdin }).on("line", async (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      emit({ type: "response", command: "parse", success: false, error: "Failed to parse command" });
      return;
    }
    if (command.type === "extension_ui_response") {
      waiting.get(command.id)?.(command);
      return;
    }
    if (command.type !== "prompt") {
      emit({ id: command.id, type: "response", command: command.type, success: false, error: `Unknown command: ${command.type}` });
      return;
    }
    log({ cli: "pi", rpc: command });
    if (process.env.STANDIN_RPC_FAIL) {
      emit({ id: command.id, type: "response", command: "prompt", success: false, error: process.env.STANDIN_RPC_FAIL });
      return;
    }
    emit({ id: command.id, type: "response", command: "prompt", success: true });
    emit({ type: "agent_start" });
    if (process.env.STANDIN_SLEEP_MS) await new Promise((r) => setTimeout(r, Number(process.env.STANDIN_SLEEP_MS)));
    if (process.env.STANDIN_UI_REQUEST) {
      emit({ type: "extension_ui_request", id: "ui-1", method: process.env.STANDIN_UI_REQUEST, title: "Proceed?" });
      log({ cli: "pi", uiResponse: await new Promise((resolve) => waiting.set("ui-1", resolve)) });
    }
    const look = "Let me look first.";
    const call = { type: "toolCall", id: "tool-1", name: "bash", arguments: { command: "pwd" } };
    emit({ type: "turn_start" });
    emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: look } });
    emit({ type: "message_end", message: assistant([{ type: "text", text: look }, call], look) });
    emit({ type: "tool_execution_start", toolCallId: "tool-1", toolName: "bash", args: call.arguments });
    emit({ type: "tool_execution_end", toolCallId: "tool-1", toolName: "bash", result: { content: [{ type: "text", text: process.cwd() }] }, isError: false });
    emit({ type: "turn_end", message: assistant([{ type: "text", text: look }, call], look), toolResults: [] });
    const text = answerText(command.message);
    emit({ type: "turn_start" });
    const half = Math.floor(text.length / 2);
    emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: text.slice(0, half) } });
    emit({ type: "message_update", assistantMessageEvent: { type: "text_delta", delta: text.slice(half) } });
    const final = assistant([{ type: "text", text }], text);
    emit({ type: "message_end", message: final });
    emit({ type: "turn_end", message: final, toolResults: [] });
    emit({ type: "agent_end", messages: [final] });
  });
}

async function main() {
  const [cli, ...args] = process.argv.slice(2);
  if (cli === "pi" && after(args, "--mode") === "rpc") return piRpc(args);
  const stdin = args.at(-1) === "-" ? readFileSync(0, "utf8") : "";
  if (process.env.STANDIN_LOG) {
    appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify({ cli, args, stdin, cwd: process.cwd() })}\n`);
  }
  if (process.env.STANDIN_SLEEP_MS) await new Promise((r) => setTimeout(r, Number(process.env.STANDIN_SLEEP_MS)));
  if (process.env.STANDIN_EXIT) {
    process.stderr.write(`${cli}: scripted failure\n`);
    process.exit(Number(process.env.STANDIN_EXIT));
  }
  const prompt = { codex: stdin, gemini: after(args, "--prompt"), kimi: after(args, "--prompt"), forge: after(args, "--prompt"), amp: after(args, "--execute") }[cli] ?? args.at(-1) ?? "";
  const text = answerText(prompt);
  const usage = { input_tokens: Math.ceil(prompt.length / 4), output_tokens: Math.ceil(text.length / 4) };
  const out = (line) => process.stdout.write(`${line}\n`);
  switch (cli) {
    case "claude":
      if (after(args, "--output-format") === "stream-json") {
        out(JSON.stringify({ type: "system", subtype: "init", session_id: "stand-in" }));
        out(JSON.stringify({ type: "message_start", message: { usage: { input_tokens: usage.input_tokens } } }));
        out(JSON.stringify({ type: "message_delta", usage: { output_tokens: usage.output_tokens } }));
        out(JSON.stringify({ type: "assistant", message: { content: [{ type: "text", text }] } }));
        out(JSON.stringify({ type: "result", subtype: "success", result: text, session_id: "stand-in", usage }));
      } else {
        out(text);
      }
      break;
    case "codex":
      writeFileSync(after(args, "--output-last-message"), text);
      out("OpenAI Codex v0.0.0 (stand-in)");
      out(JSON.stringify({ type: "item.completed", item: { type: "agent_message", text } }));
      out(JSON.stringify({ type: "turn.completed", usage }));
      break;
    case "gemini":
      out(JSON.stringify({ response: text, stats: { models: { "gemini-stand-in": { tokens: { input: usage.input_tokens, output: usage.output_tokens } } } } }));
      break;
    case "pi":
      if (after(args, "--mode") === "json") {
        out(JSON.stringify({ type: "agent_end", messages: [{ role: "assistant", content: [{ type: "text", text }] }] }));
      } else {
        out(text);
      }
      break;
    default:
      out(text);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
