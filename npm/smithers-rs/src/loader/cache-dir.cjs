// Where smithers-rs keeps what it caches (compiled workflow modules, V8's compile cache).
// CommonJS so that bin/smithers.js can read it before anything else loads.
"use strict";
const { join } = require("node:path");

/** `$SMITHERS_CACHE_DIR`, else `$XDG_CACHE_HOME/smithers-rs`, else `~/.cache/smithers-rs`. */
function cacheRoot() {
  return process.env.SMITHERS_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(home(), ".cache"), "smithers-rs");
}

/** $HOME, else the account's home (node:os loads only then). */
const home = () => process.env.HOME || require("node:os").homedir();

module.exports = { cacheRoot };
