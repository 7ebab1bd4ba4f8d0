import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { verifyGraph } from "../../compiler/verify.js";
import { assertClose, repoRoot, t } from "../util/helpers.js";

test("arithmetic, constants and slicing lower to ops with hand-checked results", () => {
  const g = compileTokr(
    `k = 2
model m(x: f32[2, 3]) -> (y, s, c) {
  param w: f32[3, 2] = ones()
  y = matmul(x, w) * 2.0 + (k - 3)
  s = x[:, 1:]
  c = x[1]
}`,
    "m.tokr",
  );
  assert.deepEqual(verifyGraph(g), []);
  const out = runGraph(g, new Map([["x", t("f32", [2, 3], [1, 2, 3, 4, 5, 6])]]));
  // rows sum to 6 and 15; *2 then + (2 - 3) = -1
  assertClose(out.get("y")!, t("f32", [2, 2], [11, 11, 29, 29]));
  assertClose(out.get("s")!, t("f32", [2, 2], [2, 3, 5, 6]));
  assertClose(out.get("c")!, t("f32", [3], [4, 5, 6]));
});

test("blocks inline with int parameters; repeat gives stable scopes and parameter names", () => {
  const g = compileTokr(
    `block scale(x, by: int) {
  param b: f32[2] = ones()
  return x * by + b
}
model m(x: f32[B, 2]) -> (y) {
  repeat 3 as i {
    x = scale(x, by: 2)
  }
  y = x
}`,
    "m.tokr",
  );
  assert.deepEqual(verifyGraph(g), []);
  const names = [...g.constants.keys()].map((v) => v.name).filter((n) => n.includes("."));
  assert.deepEqual(names, ["blocks.0.scale.b", "blocks.1.scale.b", "blocks.2.scale.b"]);
  const scopes = new Set(g.nodes.map((n) => n.scope));
  assert.ok(scopes.has("blocks.2.scale"));
  // x -> 2x+1 three times: 1 -> 3 -> 7 -> 15; 0 -> 1 -> 3 -> 7
  const out = runGraph(g, new Map([["x", t("f32", [1, 2], [1, 0])]]));
  assertClose(out.get("y")!, t("f32", [1, 2], [15, 7]));
});

test("every node carries the .tokr line:col of its call", () => {
  const g = compileTokr(`model m(x: f32[2]) -> (y) {\n  y = relu(x)\n}\n`, "m.tokr");
  const relu = g.nodes.find((n) => n.op === "Relu")!;
  assert.deepEqual(relu.loc, { file: "m.tokr", line: 2, col: 7 });
});

test("seeded parameters depend only on their stable name and seed", () => {
  const src = (seed: number): string =>
    `model m(x: f32[1, 4]) -> (y) {\n  param w: f32[4, 4] = normal(std: 0.5, seed: ${seed})\n  y = matmul(x, w)\n}\n`;
  const data = (seed: number): Float32Array =>
    [...compileTokr(src(seed)).constants.values()].find((c) => c.value.name === "w")!.data!
      .data as Float32Array;
  assert.deepEqual(data(1), data(1));
  assert.notDeepEqual(data(1), data(2));
});

test("file() parameters are ref constants keyed by stable name", () => {
  const g = compileTokr(`model m(x: f32[2]) -> (y) {\n  param w: f32[2] = file()\n  y = x + w\n}\n`);
  const c = [...g.constants.values()].find((k) => k.value.name === "w")!;
  assert.equal(c.ref, "w");
  assert.equal(c.data, undefined);
});

test("the 2-block tiny transformer example verifies and runs on the CPU backend", () => {
  const src = readFileSync(join(repoRoot, "examples/tiny.tokr"), "utf8");
  const g = compileTokr(src, "examples/tiny.tokr");
  assert.deepEqual(verifyGraph(g), []);
  assert.equal(g.nodes.filter((n) => n.op === "attention").length, 2);
  const x = Array.from({ length: 2 * 3 * 8 }, (_, i) => Math.sin(i));
  const out = runGraph(g, new Map([["x", t("f32", [2, 3, 8], x)]]));
  const y = out.get("y")!;
  const cls = out.get("cls")!;
  assert.deepEqual([...y.shape], [2, 3, 8]);
  assert.ok([...y.data].every(Number.isFinite));
  // cls = y[:, 0]: token 0 of each batch element.
  assertClose(cls, t("f32", [2, 8], [...y.data.slice(0, 8), ...y.data.slice(24, 32)]));
});

test("several assignment targets take several outputs; IR op names are callable as is", () => {
  const g = compileTokr(
    `model m(q: f32[1, 1, 2, 2]) -> (o, imp) {\n  o, imp = attention(q, q, Identity(q), scores: "cls")\n}\n`,
  );
  // Identical keys: query 0 weighs both keys 1/2, so importance is [0.5, 0.5] and out = mean of v.
  const out = runGraph(g, new Map([["q", t("f32", [1, 1, 2, 2], [1, 2, 1, 2])]]));
  assertClose(out.get("imp")!, t("f32", [1, 2], [0.5, 0.5]));
  assertClose(out.get("o")!, t("f32", [1, 1, 2, 2], [1, 2, 1, 2]));
});
