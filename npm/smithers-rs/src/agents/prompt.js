// Agent prompts: the children of an agent <Task> (a string, JSX, an MDX component with
// props) rendered to markdown text when the task runs, and the instructions that ask the
// model for JSON matching the task's output schema.
import { Fragment, isElement, jsx } from "../jsx-runtime.js";
import { SmithersError } from "../errors.js";

/** Markdown for the HTML elements MDX produces; `children` is already text. */
const MARKDOWN = {
  h1: (c) => `# ${c}\n\n`,
  h2: (c) => `## ${c}\n\n`,
  h3: (c) => `### ${c}\n\n`,
  h4: (c) => `#### ${c}\n\n`,
  h5: (c) => `##### ${c}\n\n`,
  h6: (c) => `###### ${c}\n\n`,
  p: (c) => `${c}\n\n`,
  blockquote: (c) => `> ${c.trim().replaceAll("\n", "\n> ")}\n\n`,
  hr: () => "---\n\n",
  ul: (c) => `${c.trim().replace(/\n{2,}/g, "\n")}\n\n`,
  ol: (c) => `${c.trim().replace(/\n{2,}/g, "\n")}\n\n`,
  li: (c) => `- ${c.trim()}\n`,
  pre: (c) => c,
  strong: (c) => `**${c}**`,
  em: (c) => `*${c}*`,
  del: (c) => `~~${c}~~`,
  br: () => "\n",
  table: (c) => `${c}\n`,
  tr: (c) => `| ${c}\n`,
  th: (c) => `${c} | `,
  td: (c) => `${c} | `,
  div: (c) => `${c}\n`,
  section: (c) => `${c}\n`,
};

/**
 * Renders a prompt to text: strings and numbers as they are, elements by calling their
 * components (our jsx-runtime, which compiled MDX uses too) and intrinsic tags as markdown.
 * @param {unknown} node
 * @returns {string}
 */
export function renderPromptText(node) {
  return collapse(text(node, 0));
}

/**
 * An MDX (or any) component rendered with props to markdown text, as Smithers' renderMdx.
 * @param {(props: any) => unknown} Component
 * @param {Record<string, unknown>} [props]
 */
export function renderMdx(Component, props = {}) {
  return renderPromptText(jsx(Component, props));
}

const collapse = (s) => s.replace(/\n{3,}/g, "\n\n").trim();

function text(node, depth) {
  if (depth > 200) throw new SmithersError("INVALID_PROMPT", "the prompt nests components more than 200 deep");
  if (node === null || node === undefined || typeof node === "boolean") return "";
  if (typeof node === "string") return node;
  if (typeof node === "number" || typeof node === "bigint") return String(node);
  if (Array.isArray(node)) return node.map((n) => text(n, depth + 1)).join("");
  if (!isElement(node)) {
    if (typeof node === "function") {
      throw new SmithersError("INVALID_PROMPT", "an agent task's prompt is a function; pass its result, or a component as <Prompt />");
    }
    throw new SmithersError(
      "INVALID_PROMPT",
      `an agent task's prompt must be text, JSX or an MDX component, not ${Object.prototype.toString.call(node)}`,
    );
  }
  const { type, props } = node;
  if (type === Fragment) return text(props.children, depth + 1);
  if (typeof type === "function") {
    if (type.__smithersTag) {
      throw new SmithersError("INVALID_PROMPT", `<${type.name}> is a workflow component; it cannot be part of a prompt`);
    }
    return text(type(props), depth + 1);
  }
  if (typeof type === "string") {
    const inner = text(props.children, depth + 1);
    if (type === "code") {
      const lang = typeof props.className === "string" ? props.className.replace(/^language-/, "") : null;
      return lang !== null ? `\`\`\`${lang}\n${inner.replace(/\n$/, "")}\n\`\`\`\n\n` : `\`${inner}\``;
    }
    if (type === "ol") return `${orderedItems(props, depth)}\n\n`;
    if (type === "a") return `[${inner}](${props.href ?? ""})`;
    if (type === "img") return `![${props.alt ?? ""}](${props.src ?? ""})`;
    const md = MARKDOWN[type];
    return md ? md(inner) : inner;
  }
  throw new SmithersError("INVALID_PROMPT", "an agent task's prompt holds an element of unknown type");
}

/** `1. …` per <li> of an <ol> (from its `start`); what else it holds is kept as text. */
function orderedItems(props, depth) {
  let n = Number.isInteger(props.start) ? props.start : 1;
  const lines = [];
  const visit = (child) => {
    if (Array.isArray(child)) return child.forEach(visit);
    if (isElement(child) && child.type === "li") {
      lines.push(`${n++}. ${text(child.props.children, depth + 1).trim()}`);
    } else {
      const t = text(child, depth + 1).trim();
      if (t) lines.push(t);
    }
  };
  visit(props.children);
  return lines.join("\n");
}

/**
 * An example value for a JSON Schema, as Smithers injects into prompt components
 * (`schema` prop): strings show their description, numbers 0, enums their first value.
 * @param {any} schema
 */
export function schemaExample(schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 8) return "value";
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if ("const" in schema) return schema.const;
  const variants = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(variants) && variants.length) {
    const first = variants.find((v) => v?.type !== "null") ?? variants[0];
    return schemaExample(first, depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "string":
      return schema.description || "string";
    case "number":
    case "integer":
      return 0;
    case "boolean":
      return false;
    case "array":
      return [schemaExample(schema.items, depth + 1)];
    case "object": {
      const out = {};
      for (const [key, field] of Object.entries(schema.properties ?? {})) out[key] = schemaExample(field, depth + 1);
      return out;
    }
    default:
      return "value";
  }
}

/** One line per field: `name: type` (required fields unmarked, optional ones `(optional)`). */
export function describeFields(schema) {
  const required = new Set(schema?.required ?? []);
  return Object.entries(schema?.properties ?? {})
    .map(([name, field]) => `- ${name}: ${typeName(field)}${required.has(name) ? "" : " (optional)"}`)
    .join("\n");
}

function typeName(schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 6) return "any";
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  const variants = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(variants)) return variants.map((v) => typeName(v, depth + 1)).join(" | ");
  const types = Array.isArray(schema.type) ? schema.type : [schema.type ?? "any"];
  return types
    .map((t) => {
      if (t === "array") return `${typeName(schema.items, depth + 1)}[]`;
      if (t === "object" && schema.properties) {
        return `{ ${Object.entries(schema.properties).map(([k, v]) => `${k}: ${typeName(v, depth + 1)}`).join("; ")} }`;
      }
      return t;
    })
    .join(" | ");
}

/** Each output schema as the prompt shows it, made once. */
const SHOWN_SCHEMAS = new WeakMap();

/**
 * The prompt the agent gets: the task's prompt between an instruction to end with a JSON
 * object and the schema it must match (as Smithers words it, so models behave alike).
 * @param {string} prompt
 * @param {object} schema the output table's JSON Schema
 */
export function promptWithSchema(prompt, schema) {
  let shown = SHOWN_SCHEMAS.get(schema);
  if (shown === undefined) SHOWN_SCHEMAS.set(schema, (shown = JSON.stringify(schema, null, 2)));
  return [
    "IMPORTANT: After completing the task below, you MUST output a JSON object in a ```json code fence at the very end of your response. Do NOT forget this — the workflow fails without it.",
    "",
    prompt,
    "",
    "",
    "**REQUIRED OUTPUT** — You MUST end your response with a JSON object in a code fence matching this schema:",
    "```json",
    shown,
    "```",
    "Output the JSON at the END of your response. The workflow will fail without it.",
  ].join("\n");
}

/**
 * The one follow-up an attempt gets when its answer has no JSON, or JSON that does not
 * match the schema: the fields by name, the problem, and the previous answer (shortened).
 * @param {{ schema: object, previousText: string, problem: string }} args
 */
export function followUpPrompt({ schema, previousText, problem }) {
  const shown = previousText.length > 2000 ? `${previousText.slice(0, 1000)}\n...[truncated]...\n${previousText.slice(-1000)}` : previousText;
  return [
    "You previously completed a task and produced this response (possibly truncated):",
    "",
    shown,
    "",
    `That response cannot be used: ${problem}`,
    "",
    "Now you MUST output ONLY a valid JSON object (no other text) summarizing your work above, with exactly these fields and types:",
    describeFields(schema),
    "",
    "The JSON Schema it must match:",
    JSON.stringify(schema, null, 2),
    "",
    "Output ONLY the JSON object, nothing else.",
  ].join("\n");
}
