#!/bin/sh
# Stand-in for an LLM call: drafts a changelog, and takes the reviewer's feedback into
# account when pushed back (FEEDBACK), as `claude -p "$PROMPT"` would.
if [ -n "${FEEDBACK:-}" ]; then
  echo "Changelog v1.3.0 (revised: ${FEEDBACK})"
  echo "- API: faster pagination"
else
  echo "Changelog v1.3.0"
  echo "- API: faster pagination"
  echo "- UI: dark mode"
  echo "- Fixes: 14 bugs"
fi
echo "draft ${DAG_PUSHBACK_ITERATION:-0}" >> marks.log
