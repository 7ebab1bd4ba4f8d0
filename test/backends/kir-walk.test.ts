import assert from "node:assert/strict";
import { test } from "node:test";
import { add, builtin, cast, f32, i32, load, lt, select, subgroup, varRef } from "../../compiler/kir/expr.js";
import type { Expr, Stmt } from "../../compiler/kir/types.js";
import { exprOperands, forEachInBody, someInBody } from "../../backends/kir-walk.js";

// A body with an expression or statement of interest at every nesting place a walk must reach.
const x = varRef("x", "f32");
const body: Stmt[] = [
  { k: "decl", name: "x", t: "f32", init: f32(1), mut: true },
  {
    k: "for",
    v: "i",
    from: i32(0),
    to: builtin("num_groups", 1),
    step: 1,
    body: [
      {
        k: "if",
        cond: lt(varRef("i", "i32"), i32(3)),
        then: [{ k: "assign", name: "x", value: add(x, load("a", varRef("i", "i32"), "f32")) }],
        else: [{ k: "barrier" }],
      },
    ],
  },
  { k: "store", array: "out", index: i32(0), value: select(lt(x, f32(0)), subgroup("add", x), x) },
];

test("someInBody finds statements and expressions at any depth, and only what matches", () => {
  assert.equal(
    someInBody(body, { stmt: (s) => s.k === "barrier" }),
    true,
    "barrier in an else of an if in a for",
  );
  assert.equal(
    someInBody(body, { expr: (e) => e.k === "subgroup" }),
    true,
    "subgroup in a select arm of a store",
  );
  assert.equal(someInBody(body, { expr: (e) => e.k === "load" && e.array === "a" }), true);
  assert.equal(someInBody(body, { expr: (e) => e.k === "builtin" }), true, "a for bound");
  assert.equal(someInBody(body, { expr: (e) => e.t === "f16" }), false);
  assert.equal(someInBody(body, { stmt: (s) => s.k === "return" }), false);
  assert.equal(someInBody(body, {}), false);
  assert.equal(someInBody([], { stmt: () => true, expr: () => true }), false);
});

test("forEachInBody visits every statement and expression node once, outer before inner", () => {
  const kinds: string[] = [];
  const vars: string[] = [];
  forEachInBody(body, {
    stmt: (s) => kinds.push(s.k),
    expr: (e) => {
      if (e.k === "var") vars.push(e.name);
    },
  });
  assert.deepEqual(kinds, ["decl", "for", "if", "assign", "barrier", "store"]);
  // if cond i; assign: x, load index i; store: select cond x, subgroup x, else x.
  assert.deepEqual(vars, ["i", "x", "i", "x", "x", "x"]);
});

test("exprOperands lists the direct operands in field order", () => {
  const c = lt(x, f32(2));
  const sel: Expr = select(c, x, f32(0));
  assert.deepEqual(exprOperands(sel), [c, x, f32(0)]);
  assert.deepEqual(exprOperands(cast(x, "i32")), [x]);
  assert.deepEqual(exprOperands(subgroup("shuffle_xor", x, i32(1))), [x, i32(1)]);
  assert.deepEqual(exprOperands(subgroup("max", x)), [x]);
  assert.deepEqual(exprOperands(i32(4)), []);
});
