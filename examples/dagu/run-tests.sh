#!/bin/sh
# Stand-in for a test suite: one line per suite.
suite="${1:?usage: run-tests.sh <suite>}"
echo "${suite}: 42 passed"
echo "tests ${suite}" >> marks.log
