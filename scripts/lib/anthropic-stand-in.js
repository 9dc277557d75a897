// A scripted model behind Anthropic's Messages API on loopback, for running workflows
// written for Claude (`anthropic("…")` from @ai-sdk/anthropic) offline: point
// ANTHROPIC_BASE_URL at it. It answers like a model that follows smithers' output
// instructions: a first turn that calls one of the tools offered (when there are any), then
// a JSON answer for the schema the request asks for (the prompt's REQUIRED OUTPUT block,
// an `output_format`, or a forced `json` tool), built from the schema and overridden by
// the script's values.
import { createServer } from "node:http";

let serial = 0;

/**
 * A value that satisfies a JSON Schema: strings name their field and are unique (ids built
 * from them differ), numbers respect their bounds, arrays hold two items (or `minItems`),
 * and enums take their first value, or in an array item the value at the item's index, so
 * that lists mix kinds as a model's would.
 * @param {any} schema
 * @param {string} [name] the field's name, shown in strings
 * @param {number} [depth]
 * @param {number} [index] the position of the enclosing array item
 */
export function valueForSchema(schema, name = "value", depth = 0, index = 0) {
  if (!schema || typeof schema !== "object" || depth > 12) return null;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[index % schema.enum.length];
  if ("default" in schema) return schema.default;
  const variants = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(variants) && variants.length) {
    const pick = variants.find((v) => v && v.type !== "null") ?? variants[0];
    return valueForSchema(pick, name, depth + 1, index);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length) {
    return Object.assign({}, ...schema.allOf.map((s) => valueForSchema(s, name, depth + 1, index)));
  }
  const type = Array.isArray(schema.type) ? (schema.type.find((t) => t !== "null") ?? "null") : schema.type;
  switch (type ?? (schema.properties ? "object" : undefined)) {
    case "string": {
      if (schema.format === "date-time") return "2026-01-01T00:00:00.000Z";
      if (schema.format === "date") return "2026-01-01";
      if (schema.format === "email") return "someone@example.com";
      if (schema.format === "uri" || schema.format === "url") return "https://example.com/";
      if (schema.format === "uuid") return "00000000-0000-4000-8000-000000000000";
      // A pattern that is one literal word (`^saffron-orbit-lantern$`): what the model found.
      if (typeof schema.pattern === "string" && /^\^[A-Za-z0-9_-]+\$$/.test(schema.pattern)) return schema.pattern.slice(1, -1);
      // Identifier-like, as models answer ids and paths: workflows build node ids from them.
      let text = `${name}-${++serial}`;
      if (schema.minLength && text.length < schema.minLength) text = text.padEnd(schema.minLength, ".");
      if (schema.maxLength && text.length > schema.maxLength) text = text.slice(0, schema.maxLength);
      return text;
    }
    case "integer":
    case "number": {
      let n = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 1);
      if (schema.maximum !== undefined && n > schema.maximum) n = schema.maximum;
      if (schema.exclusiveMaximum !== undefined && n >= schema.exclusiveMaximum) n = schema.exclusiveMaximum - 1;
      return type === "integer" ? Math.ceil(n) : n;
    }
    case "boolean":
      return true;
    case "null":
      return null;
    case "array": {
      const count = Math.max(2, schema.minItems ?? 2);
      return Array.from({ length: Math.min(count, schema.maxItems ?? count) }, (_, i) => valueForSchema(schema.items, name, depth + 1, i));
    }
    case "object": {
      const out = {};
      const properties = schema.properties ?? {};
      const required = new Set(schema.required ?? Object.keys(properties));
      for (const [key, field] of Object.entries(properties)) {
        if (required.has(key)) out[key] = valueForSchema(field, key, depth + 1, index);
      }
      // A record with required keys (z.record(z.enum([…]), …)): the values' schema.
      for (const key of required) {
        if (!(key in out) && typeof schema.additionalProperties === "object") {
          out[key] = valueForSchema(schema.additionalProperties, key, depth + 1, index);
        }
      }
      return out;
    }
    default:
      return null;
  }
}

/**
 * The JSON Schema a smithers prompt asks for: its REQUIRED OUTPUT block, or the schema a
 * follow-up prompt names ("The JSON Schema it must match:"); else null.
 */
export function schemaFromPrompt(text) {
  const fenced = /REQUIRED OUTPUT[^\n]*\n```json\n([\s\S]*?)\n```/.exec(text);
  const followUp = /The JSON Schema it must match:\n(\{[\s\S]*?\n\})\n/.exec(text);
  for (const m of [fenced, followUp]) {
    if (!m) continue;
    try {
      return JSON.parse(m[1]);
    } catch {
      // not this one
    }
  }
  return null;
}

const textOf = (content) =>
  typeof content === "string" ? content : Array.isArray(content) ? content.map((c) => (c?.type === "text" ? c.text : "")).join("\n") : "";

/**
 * Starts the stand-in on 127.0.0.1 (a free port).
 * @param {{ answer?: (ask: { prompt: string, system: string, schema: any, value: any, turn: number }) => any,
 *   toolCall?: (ask: { prompt: string, system: string, tools: string[] }) => { name: string, input: object } | null,
 *   readPath?: string, useTools?: boolean }} [script]
 *   `answer` may return an object merged over the built value, or a string sent as the text;
 *   `toolCall` chooses the first turn's tool call (null: none), instead of the default one.
 * @returns {Promise<{ url: string, requests: any[], close: () => Promise<void> }>}
 */
export async function startAnthropicStandIn(script = {}) {
  const requests = [];
  let ids = 0;
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      let request;
      try {
        request = JSON.parse(body);
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ type: "error", error: { type: "invalid_request_error", message: "body is not JSON" } }));
        return;
      }
      requests.push(request);
      const reply = respond(request, script, () => ++ids);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function respond(request, script, nextId) {
  const messages = request.messages ?? [];
  const prompt = messages.filter((m) => m.role === "user").map((m) => textOf(m.content)).join("\n");
  const system = Array.isArray(request.system) ? request.system.map((s) => s.text).join("\n") : (request.system ?? "");
  const toolResults = messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((c) => c?.type === "tool_result");
  const tools = (request.tools ?? []).map((t) => t.name);
  const jsonTool = (request.tools ?? []).find((t) => t.name === "json");
  const formatSchema = request.output_format?.schema ?? request.output_config?.format?.schema ?? null;
  const usage = { input_tokens: Math.ceil(JSON.stringify(request).length / 4), output_tokens: 0 };
  const message = (content, stop) => {
    usage.output_tokens = Math.ceil(JSON.stringify(content).length / 4);
    return { id: `msg_${nextId()}`, type: "message", role: "assistant", model: request.model, content, stop_reason: stop, stop_sequence: null, usage };
  };
  // First turn with tools offered: use one, as an agent gathering evidence would.
  const usable = tools.filter((t) => t !== "json");
  if (script.useTools !== false && usable.length && toolResults.length === 0) {
    const call = script.toolCall ? script.toolCall({ prompt, system, tools: usable }) : toolCall(usable, script);
    if (call) return message([{ type: "text", text: "Let me look first." }, { type: "tool_use", id: `toolu_${nextId()}`, ...call }], "tool_use");
  }
  const schema = jsonTool?.input_schema ?? formatSchema ?? schemaFromPrompt(prompt);
  const built = schema ? valueForSchema(schema) : null;
  const scripted = script.answer?.({ prompt, system, schema, value: built, turn: messages.length });
  if (typeof scripted === "string") return message([{ type: "text", text: scripted }], "end_turn");
  const value = built && typeof built === "object" && scripted && typeof scripted === "object" ? { ...built, ...scripted } : (scripted ?? built);
  if (jsonTool) return message([{ type: "tool_use", id: `toolu_${nextId()}`, name: "json", input: value }], "tool_use");
  if (formatSchema) return message([{ type: "text", text: JSON.stringify(value) }], "end_turn");
  const text = value === null ? "Done: nothing to report." : `Here is what I found.\n\n\`\`\`json\n${JSON.stringify(value, null, 2)}\n\`\`\``;
  return message([{ type: "text", text }], "end_turn");
}

function toolCall(tools, script) {
  if (tools.includes("read") && script.readPath) return { name: "read", input: { path: script.readPath } };
  if (tools.includes("bash")) return { name: "bash", input: { cmd: "ls" } };
  if (tools.includes("grep")) return { name: "grep", input: { pattern: "export", path: "." } };
  if (tools.includes("read")) return { name: "read", input: { path: script.readPath ?? "." } };
  return null;
}
