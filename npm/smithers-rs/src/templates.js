// Environment values as text. `${NAME}` / `$NAME` references in values a workflow's author
// wrote (a Dagu DAG's and step's `env`, a sub-DAG call's `params`) are replaced by the
// variable's value when it is set, kept as written otherwise. Only variable references: no
// command substitution, and nothing is handed to a shell to evaluate. Values that come from
// outside the file (run input, approver inputs, step outputs) are never expanded.

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * @param {string} text
 * @param {(name: string) => string | undefined} lookup
 */
export function expandTemplate(text, lookup) {
  return String(text).replace(REF, (whole, braced, bare) => lookup(braced ?? bare) ?? whole);
}

/**
 * Expands `[name, template]` pairs in order: each sees `vars` (the environment the process
 * will have), the pairs before it, then this process's environment.
 * @param {[string, string][]} templates
 * @param {Record<string, string> | [string, string][]} vars
 * @returns {[string, string][]}
 */
export function expandEnvTemplates(templates, vars) {
  const known = new Map(Array.isArray(vars) ? vars : Object.entries(vars));
  const done = new Map();
  const out = [];
  for (const [name, template] of templates) {
    const value = expandTemplate(template, (n) => known.get(n) ?? done.get(n) ?? process.env[n]);
    done.set(name, value);
    out.push([name, value]);
  }
  return out;
}

/**
 * Dagu substitutes its variables into a command's text before the shell sees it, so
 * `'{"text": "for ${DAG_NAME}"}'` works inside single quotes. We do the same for the
 * variables whose values never come from outside the file or the engine (names of the DAG,
 * the run, the steps, the status), and only when the value is plain (letters, digits,
 * `_ . : @ = , -`): everything else reaches the step in its environment only.
 */
const TEXT_VARS = new Set(["DAG_NAME", "DAG_RUN_ID", "DAG_RUN_STEP_NAME", "DAG_WAITING_STEPS", "DAG_RUN_STATUS"]);
const PLAIN = /^[A-Za-z0-9_.:@=,-]*$/;

/** @param {string} text @param {Record<string, string | undefined>} vars */
export function substituteDaguVars(text, vars) {
  return expandTemplate(text, (n) => (TEXT_VARS.has(n) && typeof vars[n] === "string" && PLAIN.test(vars[n]) ? vars[n] : undefined));
}

/** Words of a params string: split at spaces, '…' and "…" keep spaces (quotes removed). */
export function shellWords(text) {
  const words = [];
  let word = "";
  let quote = null;
  let started = false;
  for (const c of String(text)) {
    if (quote) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      started = true;
    } else if (/\s/.test(c)) {
      if (started || word) words.push(word);
      word = "";
      started = false;
    } else {
      word += c;
    }
  }
  if (started || word) words.push(word);
  return words;
}
