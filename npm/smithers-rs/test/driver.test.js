// The driver's own helpers, without an engine.
import assert from "node:assert/strict";
import { test } from "node:test";
import { sameGraph } from "../src/driver.js";

test("sameGraph: equal JSON values are the same graph, whatever their key order", () => {
  const last = JSON.parse('{"version":1,"root":{"kind":"sequence","children":[{"kind":"task","id":"a","body":{"type":"static","value":[1,"x",null,true]}}]}}');
  const again = { root: { children: [{ body: { value: [1, "x", null, true], type: "static" }, id: "a", kind: "task" }], kind: "sequence" }, version: 1 };
  assert.equal(sameGraph(again, last), true);
  assert.equal(sameGraph(Object.assign(Object.create(null), { a: 1 }), { a: 1 }), true);
});

test("sameGraph: any difference, or a value JSON would write otherwise, is a different graph", () => {
  const last = JSON.parse('{"a":[1,2],"b":{"c":"d"},"n":0}');
  const cases = [
    { a: [1, 2], b: { c: "e" }, n: 0 }, // a value
    { a: [1, 2, 3], b: { c: "d" }, n: 0 }, // a length
    { a: [1, 2], b: { c: "d" } }, // a missing key
    { a: [1, 2], b: { c: "d" }, n: 0, extra: 1 }, // an extra key
    { a: [1, 2], b: { c: "d" }, n: 0, gone: undefined }, // undefined (JSON drops the key)
    { a: [1, 2], b: { c: "d" }, n: Number.NaN }, // NaN (JSON writes null)
    { a: [1, 2], b: new Date(0), n: 0 }, // not a plain object
    { a: [1, 2], b: { c: "d", toJSON: () => ({ c: "d" }) }, n: 0 }, // a toJSON
    { a: { 0: 1, 1: 2 }, b: { c: "d" }, n: 0 }, // an object for an array
  ];
  for (const c of cases) assert.equal(sameGraph(c, last), false, JSON.stringify(c));
  assert.equal(sameGraph(null, last), false);
  assert.equal(sameGraph([], {}), false);
});
