import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { parseDim, sym } from "../../compiler/ir/sym.js";
import { parseAndVerify } from "../../compiler/ir/text/parser.js";
import { printGraph } from "../../compiler/ir/text/printer.js";
import "../../compiler/ops/index.js";

test("the token-reduction ops and modes round-trip through the textual IR and verify", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "H", "W"]) b.symbol(s);
  const n = parseDim("H*W + 1");
  const x = b.input("x", "f32", [sym("B"), n, 8]);
  const k = b.input("k", "f32", [sym("B"), 2, n, 4]);
  const grid = [sym("H"), sym("W")];
  const pooled = b.ops("tokens.pool", [x], { mode: "spatial", size: 2, protect_first: 1, grid }, 2);
  const score = b.op("tokens.score", [k], { method: "key_norm" });
  const trans = b.op("tokens.score", [x, x], { method: "transition", w_dir: 0.5 });
  const attn = b.ops("attention", [k, k, k], { scores: "graph", graph_iters: 3 }, 2);
  const merged = b.ops(
    "tokens.merge",
    [x, x, null, score],
    { r: 2, method: "multi_criteria", w_info: 0.5 },
    3,
  );
  const g = b.output(...pooled, score, trans, ...attn, ...merged);
  const text = printGraph(g);
  assert.match(text, /tokens\.pool\(%x\) \{grid = \[H, W\], mode = "spatial", protect_first = 1, size = 2\}/);
  assert.match(
    text,
    /tokens\.merge\(%x, %x, none, %\d+\) \{method = "multi_criteria", r = 2, w_info = 0.5\}/,
  );
  assert.match(text, /: f32\[B, ceildiv\(H, 2\)\*ceildiv\(W, 2\) \+ 1, 8\]/);
  assert.equal(printGraph(parseAndVerify(text)), text);
});
