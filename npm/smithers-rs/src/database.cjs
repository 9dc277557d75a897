"use strict";
// Database strings: a SQLite file path, or a PostgreSQL URL (`postgres://` / `postgresql://`,
// `?schema=` for the schema that holds the engine's tables). The core picks the store by the
// string (crates/smithers-core/src/store/mod.rs); here a path is made absolute and a URL is
// left exactly as given.
const { resolve } = require("node:path");

/** Whether `db` names a PostgreSQL database rather than a SQLite file. */
function isServerUrl(db) {
  return typeof db === "string" && /^postgres(ql)?:\/\//.test(db);
}

/** A file path made absolute; a URL as it is. */
function resolveDb(db) {
  return isServerUrl(db) ? db : resolve(db);
}

/** The database string for messages and logs: a URL without its password. */
function showDb(db) {
  if (!isServerUrl(db)) return db;
  return db.replace(/^(postgres(?:ql)?:\/\/[^:/?@]*):[^@/?]*@/, "$1:***@").replace(/([?&]password=)[^&]*/, "$1***");
}

module.exports = { isServerUrl, resolveDb, showDb };
