// TOON field types -> JSON Schema. Shared by the TOON loader (`input:`, `output:`, `schemas:`)
// and the builder's `fields()`. The schemas have the shape zod 4 gives the same types, so a
// workflow written with zod in JSX and with field types in TOON registers equal tables.
//
//   string | number | boolean      scalar
//   "a" | "b"   'a' | 'b'   a | b  literal union (strings)
//   T[]                            list of T (string[], 'a' | 'b'[])
//   T?  T[]?                       optional: absent or null (not in `required`)
//   nested block (key: ...)        struct
//   [1]: - field: type ...         list of structs (one item, the struct's fields)

const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";
const SCALARS = new Set(["string", "number", "boolean"]);
const BARE_LITERAL = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * Thrown by the converters; callers turn it into their own error (with file and line).
 * `path` names the offending field, dotted from the map's root.
 */
export class FieldTypeError extends Error {
  /** @param {string} message @param {string} path */
  constructor(message, path) {
    super(message);
    this.path = path;
  }
}

/**
 * An object schema from a field map `{ name: type | block | [struct] }`.
 * @param {unknown} map
 * @param {{ path?: string, root?: boolean, checkField?: (name: string, path: string) => void }} [opts]
 *   `root`: add `$schema` (top-level schemas); `checkField`: called for each top-level field name.
 * @returns {Record<string, any>}
 */
export function fieldMapToSchema(map, { path = "", root = true, checkField } = {}) {
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new FieldTypeError(`expected a block of fields (name: type), got ${describe(map)}`, path);
  }
  const entries = Object.entries(map);
  if (entries.length === 0) throw new FieldTypeError("a block of fields needs at least one field", path);
  const properties = {};
  const required = [];
  for (const [name, value] of entries) {
    const fieldPath = path ? `${path}.${name}` : name;
    checkField?.(name, fieldPath);
    const { schema, optional } = fieldToSchema(value, fieldPath);
    properties[name] = schema;
    if (!optional) required.push(name);
  }
  const schema = root ? { $schema: DRAFT_2020_12, type: "object", properties } : { type: "object", properties };
  if (required.length) schema.required = required;
  schema.additionalProperties = false;
  return schema;
}

/**
 * One field: a type string, a nested block, or a one-item list (list of that item).
 * @returns {{ schema: Record<string, any>, optional: boolean }}
 */
export function fieldToSchema(value, path) {
  if (typeof value === "string") return typeToSchema(value, path);
  if (Array.isArray(value)) {
    if (value.length !== 1) {
      throw new FieldTypeError(
        `a list field describes its item once (one entry, e.g. "${path}[1]:" then "- name: string"); got ${value.length} entries`,
        path,
      );
    }
    const [item] = value;
    const items = typeof item === "string" ? typeToSchema(item, `${path}[0]`) : { schema: fieldMapToSchema(item, { path: `${path}[0]`, root: false }), optional: false };
    if (items.optional) throw new FieldTypeError("a list item cannot be optional", `${path}[0]`);
    return { schema: { type: "array", items: items.schema }, optional: false };
  }
  if (typeof value === "object" && value !== null) {
    return { schema: fieldMapToSchema(value, { path, root: false }), optional: false };
  }
  throw new FieldTypeError(`expected a type (string, number, boolean, "a" | "b", string[], T?) or a block, got ${describe(value)}`, path);
}

/** @param {string} text @param {string} path */
export function typeToSchema(text, path) {
  let t = text.trim();
  let optional = false;
  if (t.endsWith("?")) {
    optional = true;
    t = t.slice(0, -1).trim();
  }
  let array = false;
  if (t.endsWith("[]")) {
    array = true;
    t = t.slice(0, -2).trim();
  }
  if (t.endsWith("?") || t.endsWith("[]")) {
    throw new FieldTypeError(`cannot read type ${JSON.stringify(text)}: write T[] or T? (or T[]?)`, path);
  }
  const base = SCALARS.has(t) ? { type: t } : literalUnion(t, text, path);
  const schema = array ? { type: "array", items: base } : base;
  return { schema: optional ? nullable(schema) : schema, optional };
}

/** `T?` may be absent or null (an output column is NULL either way); zod's .nullish() shape. */
function nullable(schema) {
  if (typeof schema.type === "string" && SCALARS.has(schema.type) && !schema.enum) return { type: [schema.type, "null"] };
  return { anyOf: [schema, { type: "null" }] };
}

function literalUnion(t, text, path) {
  const quoted = /^(["']).*\1$/.test(t);
  if (!t.includes("|") && !quoted) {
    throw new FieldTypeError(
      `unknown type ${JSON.stringify(text)}: use string, number, boolean, a literal union ("a" | "b"), T[] or T?`,
      path,
    );
  }
  const values = [];
  for (const raw of t.split("|")) {
    const part = raw.trim();
    const m = /^"([^"]*)"$/.exec(part) ?? /^'([^']*)'$/.exec(part);
    if (m) {
      values.push(m[1]);
    } else if (BARE_LITERAL.test(part) && !SCALARS.has(part)) {
      values.push(part);
    } else {
      throw new FieldTypeError(
        `${JSON.stringify(part)} in ${JSON.stringify(text)} is not a literal: a union lists string literals, e.g. "a" | "b"`,
        path,
      );
    }
  }
  if (new Set(values).size !== values.length) {
    throw new FieldTypeError(`${JSON.stringify(text)} lists a literal twice`, path);
  }
  return { type: "string", enum: values };
}

function describe(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a block" : `${typeof v} ${JSON.stringify(v)}`;
}
