#!/usr/bin/env node
import { main } from "../src/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e?.stack ?? String(e));
    process.exitCode = 1;
  },
);
