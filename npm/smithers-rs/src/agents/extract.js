// The structured value of an agent's answer: `result.output` when the agent gives an object
// (the `ai` package's Output.object, a CLI agent's parsed JSON), else JSON found in its text
// (the whole text, the last ```json fence, or the last balanced JSON object), in the final
// text first and then in each step's text from the last one back.

/**
 * @param {any} result what `agent.generate(…)` resolved with
 * @returns {{ found: true, value: unknown } | { found: false }}
 */
export function structuredValue(result) {
  let output;
  try {
    // A getter: the `ai` package throws when the call produced no output.
    output = result?.output;
  } catch {
    output = undefined;
  }
  if (output !== undefined && output !== null && typeof output !== "string") return { found: true, value: output };
  const texts = [];
  if (typeof output === "string") texts.push(output);
  if (typeof result === "string") texts.push(result);
  const text = resultText(result);
  if (text) texts.push(text);
  const steps = Array.isArray(result?.steps) ? result.steps : [];
  for (let i = steps.length - 1; i >= 0; i--) {
    if (typeof steps[i]?.text === "string" && steps[i].text) texts.push(steps[i].text);
  }
  for (const t of texts) {
    const found = jsonInText(t);
    if (found.found) return found;
  }
  return { found: false };
}

/** The answer's text (`result.text`, or a plain string result). */
export function resultText(result) {
  if (typeof result === "string") return result;
  try {
    return typeof result?.text === "string" ? result.text : "";
  } catch {
    return "";
  }
}

/**
 * @param {string} text
 * @returns {{ found: true, value: unknown } | { found: false }}
 */
export function jsonInText(text) {
  const trimmed = text.replace(/^\uFEFF/, "").trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    const whole = tryParse(trimmed);
    if (whole.found) return whole;
  }
  // The last fence that opens on an object: the required output comes at the end.
  const fences = [...text.matchAll(/```(?:json)?\s*(?=\{)/gi)];
  for (let i = fences.length - 1; i >= 0; i--) {
    const start = fences[i].index + fences[i][0].length;
    const candidate = balancedAt(text, start);
    if (candidate) {
      const parsed = tryParse(candidate);
      if (parsed.found) return parsed;
    }
  }
  for (let pos = text.lastIndexOf("{"); pos >= 0; pos = pos === 0 ? -1 : text.lastIndexOf("{", pos - 1)) {
    const candidate = balancedAt(text, pos);
    if (!candidate) continue;
    const parsed = tryParse(candidate);
    if (parsed.found && typeof parsed.value === "object" && parsed.value !== null) return parsed;
  }
  return { found: false };
}

function tryParse(s) {
  try {
    return { found: true, value: JSON.parse(s) };
  } catch {
    return { found: false };
  }
}

/** The balanced `{…}` that starts at `start`, skipping braces inside strings; or null. */
function balancedAt(text, start) {
  if (text[start] !== "{") return null;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return text.slice(start, i + 1);
  }
  return null;
}

/**
 * Token usage as the `ai` package reports it (`totalUsage` over all steps, else `usage`),
 * with the other spellings CLI agents use; only the counts that are there.
 * @returns {Record<string, number> | null}
 */
export function usageOf(result) {
  let u;
  try {
    u = result?.totalUsage ?? result?.usage;
  } catch {
    u = undefined;
  }
  if (!u || typeof u !== "object") return null;
  const num = (...vals) => vals.find((v) => typeof v === "number" && Number.isFinite(v));
  const usage = {
    inputTokens: num(u.inputTokens, u.promptTokens, u.input_tokens),
    outputTokens: num(u.outputTokens, u.completionTokens, u.output_tokens),
    totalTokens: num(u.totalTokens, u.total_tokens),
    reasoningTokens: num(u.outputTokenDetails?.reasoningTokens, u.reasoningTokens),
    cacheReadTokens: num(u.inputTokenDetails?.cacheReadTokens, u.cachedInputTokens, u.cacheReadTokens),
    cacheWriteTokens: num(u.inputTokenDetails?.cacheWriteTokens, u.cacheWriteTokens),
  };
  for (const k of Object.keys(usage)) if (usage[k] === undefined) delete usage[k];
  return Object.keys(usage).length ? usage : null;
}

/** Adds two usages field by field. */
export function addUsage(a, b) {
  if (!a) return b;
  if (!b) return a;
  const sum = { ...a };
  for (const [k, v] of Object.entries(b)) sum[k] = (sum[k] ?? 0) + v;
  return sum;
}
