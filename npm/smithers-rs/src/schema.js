// Schema conversion without depending on zod: zod 4 (classic) schemas implement the
// Standard JSON Schema interface (`schema["~standard"].jsonSchema`), so we ask the
// instance itself. Plain JSON Schema objects pass through.
import { SmithersError } from "./errors.js";

const TARGET = "draft-2020-12";
const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

// Keywords that make a plain object recognisably a JSON Schema.
const JSON_SCHEMA_KEYWORDS = ["type", "properties", "anyOf", "oneOf", "allOf", "$ref", "enum", "const"];

/**
 * Convert an output or input schema to a JSON Schema object (a fresh, JSON-clean copy).
 * Output schemas must be objects with `properties` (one column per property).
 * @param {unknown} schemaLike zod 4 schema, or a plain JSON Schema object
 * @param {string} key the schema's key in createSmithers, for error messages
 * @param {{ kind?: "output" | "input" }} [opts]
 * @returns {Record<string, any>}
 */
export function toJsonSchema(schemaLike, key, { kind = "output" } = {}) {
  const json = convert(schemaLike, key);
  if (kind === "output" && (json.type !== "object" || !isPlainObject(json.properties))) {
    throw new SmithersError(
      "SCHEMA_UNSUPPORTED",
      `Output schema "${key}" must be an object schema with properties (e.g. z.object({...}))`,
      { key },
    );
  }
  return json;
}

function convert(schemaLike, key) {
  const std = schemaLike?.["~standard"];
  const viaStandard = std?.jsonSchema?.output;
  const viaMethod = schemaLike?.toJSONSchema;
  if (typeof viaStandard === "function" || typeof viaMethod === "function") {
    try {
      const out =
        typeof viaStandard === "function"
          ? viaStandard.call(std.jsonSchema, { target: TARGET })
          : viaMethod.call(schemaLike, { target: TARGET });
      return jsonCopy(out, key);
    } catch (err) {
      if (err instanceof SmithersError) throw err;
      // e.g. z.date(), z.bigint() and transforms have no JSON Schema form.
      throw new SmithersError(
        "SCHEMA_UNSUPPORTED",
        `Schema "${key}" cannot be converted to JSON Schema: ${err?.message ?? err}`,
        { key, cause: String(err?.message ?? err) },
      );
    }
  }
  if (std) {
    // zod 3, zod/mini, or another Standard Schema library without JSON Schema support.
    throw new SmithersError(
      "SCHEMA_UNSUPPORTED",
      `Schema "${key}" (${std.vendor ?? "unknown vendor"}) does not expose JSON Schema; ` +
        `use zod >= 4 ("zod", not "zod/mini") or a plain JSON Schema object`,
      { key, vendor: std.vendor ?? null },
    );
  }
  if (isPlainObject(schemaLike) && JSON_SCHEMA_KEYWORDS.some((k) => k in schemaLike)) {
    return jsonCopy(schemaLike, key);
  }
  throw new SmithersError(
    "SCHEMA_UNSUPPORTED",
    `Schema "${key}" is neither a zod 4 schema nor a JSON Schema object`,
    { key },
  );
}

// A JSON round trip gives a private copy and proves the schema is serialisable.
function jsonCopy(value, key) {
  let copy;
  try {
    copy = JSON.parse(JSON.stringify(value));
  } catch (err) {
    throw new SmithersError("SCHEMA_UNSUPPORTED", `Schema "${key}" is not JSON-serialisable: ${err.message}`, { key });
  }
  if (!isPlainObject(copy)) {
    throw new SmithersError("SCHEMA_UNSUPPORTED", `Schema "${key}" did not produce a JSON Schema object`, { key });
  }
  return copy;
}

/** @param {unknown} v @returns {v is Record<string, any>} */
export function isPlainObject(v) {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function deepFreeze(obj) {
  for (const v of Object.values(obj)) if (typeof v === "object" && v !== null) deepFreeze(v);
  return Object.freeze(obj);
}

const nullable = (schema) => ({ anyOf: [schema, { type: "null" }] });

// Built-in output schemas for <Approval>. Frozen: they are shared output handles
// (identity matters), so nobody may edit them in place.

export const approvalDecisionSchema = deepFreeze({
  $schema: DRAFT_2020_12,
  type: "object",
  properties: {
    approved: { type: "boolean" },
    note: nullable({ type: "string" }),
    decidedBy: nullable({ type: "string" }),
    decidedAt: nullable({ type: "string", format: "date-time" }),
  },
  required: ["approved", "note", "decidedBy", "decidedAt"],
  additionalProperties: false,
});

export const approvalSelectionSchema = deepFreeze({
  $schema: DRAFT_2020_12,
  type: "object",
  properties: {
    selected: { type: "string" },
    notes: nullable({ type: "string" }),
  },
  required: ["selected", "notes"],
  additionalProperties: false,
});

export const approvalRankingSchema = deepFreeze({
  $schema: DRAFT_2020_12,
  type: "object",
  properties: {
    ranked: { type: "array", items: { type: "string" } },
    notes: nullable({ type: "string" }),
  },
  required: ["ranked", "notes"],
  additionalProperties: false,
});

/**
 * The output of a command task (`<Task command=…>`) unless it says `parse="json"`: its exit
 * code and the tails of its stdout and stderr (the logs keep everything).
 */
export const commandResultSchema = deepFreeze({
  $schema: DRAFT_2020_12,
  type: "object",
  properties: {
    exitCode: { type: "integer" },
    stdout: { type: "string" },
    stderr: { type: "string" },
  },
  required: ["exitCode", "stdout", "stderr"],
});

/** `approvalDecisionSchema` plus the approver's `inputs` (for `<Approval input={[…]}>`). */
export const approvalDecisionWithInputsSchema = deepFreeze({
  ...approvalDecisionSchema,
  properties: {
    ...approvalDecisionSchema.properties,
    inputs: { type: "object", additionalProperties: { type: "string" } },
  },
});

/** The output of a task that runs a sub-workflow (`<Task workflow="./child.tsx">`). */
export const subRunResultSchema = deepFreeze({
  $schema: DRAFT_2020_12,
  type: "object",
  properties: {
    subRunId: { type: "string" },
    status: { type: "string" },
    outputs: { type: "object" },
  },
  required: ["subRunId", "status", "outputs"],
});
