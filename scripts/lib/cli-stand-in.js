#!/usr/bin/env node
// A stand-in for the coding-agent CLIs Smithers' CLI agents run (claude, codex, gemini, pi,
// kimi, amp, forge): `cli-stand-in.js <cli> [its arguments…]`. It finds the prompt where
// that CLI takes it (an argument, --prompt, --execute, or stdin), answers with JSON for the
// schema of smithers' REQUIRED OUTPUT block, and prints it in the CLI's output format.
// Install it on PATH as `<cli>` (see installCliStandIns). With STANDIN_LOG set, each call
// appends `{cli, args, stdin, cwd}` to that file as one JSON line; STANDIN_SLEEP_MS makes it
// wait before answering, STANDIN_EXIT makes it fail with that exit code.
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

async function main() {
  const [cli, ...args] = process.argv.slice(2);
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
