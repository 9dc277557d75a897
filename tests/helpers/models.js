// Scripted models for agent tests: the `ai` package's own MockLanguageModelV3 behind real
// ToolLoopAgents. A script answers each model call from what the call was asked.
import { MockLanguageModelV3 } from "ai/test";

const usage = (input, output) => ({
  inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: output, text: output, reasoning: 0 },
});

/** A final text answer. */
export const text = (t, tokens = [10, 5]) => ({
  content: [{ type: "text", text: t }],
  finishReason: { unified: "stop", raw: "end_turn" },
  usage: usage(...tokens),
  warnings: [],
});

/** A JSON answer in a ```json fence, as smithers' prompt asks. */
export const json = (value, tokens) => text(`Here it is.\n\n\`\`\`json\n${JSON.stringify(value)}\n\`\`\``, tokens);

/** A call of one tool. */
export const toolCall = (toolName, input, id = `call-${toolName}`) => ({
  content: [{ type: "tool-call", toolCallId: id, toolName, input: JSON.stringify(input) }],
  finishReason: { unified: "tool-calls", raw: "tool_use" },
  usage: usage(8, 3),
  warnings: [],
});

/** The text of the last user message of a call, and every tool result it carries. */
export function lastPrompt(options) {
  const user = options.prompt.filter((m) => m.role === "user").at(-1);
  return (user?.content ?? []).map((p) => p.text ?? "").join("");
}
export function toolResults(options) {
  return options.prompt.filter((m) => m.role === "tool").flatMap((m) => m.content);
}

/**
 * A MockLanguageModelV3 whose answers come from `respond(options, n)` (n counts calls from 1).
 * Its calls are in `model.doGenerateCalls`.
 */
export function scriptedModel(respond) {
  let n = 0;
  return new MockLanguageModelV3({ doGenerate: async (options) => respond(options, ++n) });
}

/** A model that answers only when the call is aborted (its abort signal), with the abort. */
export function hangingModel(onCall = () => {}) {
  return new MockLanguageModelV3({
    doGenerate: (options) =>
      new Promise((_, reject) => {
        onCall(options);
        options.abortSignal?.addEventListener("abort", () => reject(options.abortSignal.reason ?? new Error("aborted")), { once: true });
      }),
  });
}
