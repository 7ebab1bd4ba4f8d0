import assert from "node:assert/strict";
import { test } from "node:test";
import { checkTokr } from "../../compiler/lang/check.js";
import { editDistance, formatDiagnostic } from "../../grammar/diagnostics.js";

/** Every diagnostic of one run, formatted as `tokr check` prints them. */
function diags(src: string): string {
  return checkTokr(src, "t.tokr")
    .diagnostics.map((d) => formatDiagnostic("t.tokr", src, d).join("\n"))
    .join("\n");
}

const lines = (...ls: string[]): string => ls.join("\n");

test("edit distance counts an adjacent swap as one edit", () => {
  assert.equal(editDistance("axsi", "axis"), 1);
  assert.equal(editDistance("heds", "heads"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
});

const cases: [string, string, string][] = [
  [
    "unknown op with hint",
    "model m(x: f32[2, 3]) -> (y) {\n  y = softmx(x, axis: -1)\n}\n",
    lines(
      "t.tokr:2:7: error: unknown op or block 'softmx'",
      "      y = softmx(x, axis: -1)",
      "          ^^^^^^",
      "  hint: did you mean `softmax`?",
    ),
  ],
  [
    "unknown name inside a block, hint from the block's parameters",
    "block attn(x, heads: int) {\n  return x * heds\n}\nmodel m(x: f32[2, 3]) -> (y) {\n  y = attn(x, heads: 2)\n}\n",
    lines(
      "t.tokr:2:14: error: unknown name 'heds'",
      "      return x * heds",
      "                 ^^^^",
      "  hint: did you mean `heads`?",
    ),
  ],
  [
    "unknown attribute",
    "model m(x: f32[2, 3]) -> (y) {\n  y = softmax(x, axsi: -1)\n}\n",
    lines(
      "t.tokr:2:18: error: Softmax has no attribute 'axsi'",
      "      y = softmax(x, axsi: -1)",
      "                     ^^^^",
      "  hint: did you mean `axis`?",
    ),
  ],
  [
    "op shape error at the call",
    "model m(x: f32[2, 3]) -> (y) {\n  param w: f32[4, 5] = ones()\n  y = matmul(x, w)\n}\n",
    lines(
      "t.tokr:3:7: error: MatMul: inner dimensions differ: f32[2, 3] has K = 3 but f32[4, 5] has K = 4",
      "      y = matmul(x, w)",
      "          ^^^^^^^^^^^^",
    ),
  ],
  [
    "two syntax errors in one run",
    "model m(x: f32[2, 3]) -> (y) {\n  a = (x + \n  y = x *\n}\n",
    lines(
      "t.tokr:3:5: error: expected ')' but found '='",
      "      y = x *",
      "        ^",
      "t.tokr:3:9: error: expected '=' but found '*'",
      "      y = x *",
      "            ^",
    ),
  ],
  [
    "lexer error",
    "dim = 4 $\nmodel m(x: f32[2, dim]) -> (y) {\n  y = x\n}\n",
    lines("t.tokr:1:9: error: unexpected character '$'", "    dim = 4 $", "            ^"),
  ],
  [
    "unknown dtype, no cascade on the input's uses",
    "model m(x: f33[2, 3]) -> (y) {\n  y = x\n}\n",
    lines(
      "t.tokr:1:12: error: unknown element type 'f33'",
      "    model m(x: f33[2, 3]) -> (y) {",
      "               ^^^",
      "  hint: did you mean `f32`?",
    ),
  ],
  [
    "unknown axis role",
    "model m(x: f32[B, N@tokn]) -> (y) {\n  y = x\n}\n",
    lines(
      "t.tokr:1:21: error: unknown axis role 'tokn'",
      "    model m(x: f32[B, N@tokn]) -> (y) {",
      "                        ^^^^",
      "  hint: did you mean `token`?",
    ),
  ],
  [
    "declared output type differs",
    "model m(x: f32[2, 3]) -> (y: f32[3, 2]) {\n  y = x\n}\n",
    lines(
      "t.tokr:1:30: error: output 'y' is f32[2, 3], declared f32[3, 2]",
      "    model m(x: f32[2, 3]) -> (y: f32[3, 2]) {",
      "                                 ^^^^^^^^^",
    ),
  ],
  [
    "misspelled block argument",
    "block mlp(x, hidden: int) {\n  return x\n}\nmodel m(x: f32[2, 3]) -> (y) {\n  y = mlp(x, hiden: 4)\n}\n",
    lines(
      "t.tokr:5:14: error: block 'mlp' has no parameter 'hiden'",
      "      y = mlp(x, hiden: 4)",
      "                 ^^^^^",
      "  hint: did you mean `hidden`?",
    ),
  ],
  [
    "missing block argument",
    "block mlp(x, hidden: int) {\n  return x\n}\nmodel m(x: f32[2, 3]) -> (y) {\n  y = mlp(x)\n}\n",
    lines(
      "t.tokr:5:7: error: missing argument(s) to block 'mlp': hidden",
      "      y = mlp(x)",
      "          ^^^^^^",
    ),
  ],
  [
    "float where a block wants an int",
    "block mlp(x, hidden: int) {\n  return x\n}\nmodel m(x: f32[2, 3]) -> (y) {\n  y = mlp(x, hidden: 2.5)\n}\n",
    lines(
      "t.tokr:5:22: error: parameter 'hidden' expects an int",
      "      y = mlp(x, hidden: 2.5)",
      "                         ^^^",
    ),
  ],
  [
    "three semantic errors in one run; uses of a failed value are not reported again",
    'model m(x: f32[2, 3]) -> (y) {\n  a = relu(q)\n  b = gelu(x, approx: "tanh")\n  c = a + b\n  y = matmul(x, x)\n}\n',
    lines(
      "t.tokr:2:12: error: unknown name 'q'",
      "      a = relu(q)",
      "               ^",
      "  hint: did you mean `x`?",
      "t.tokr:3:15: error: Gelu has no attribute 'approx'",
      '      b = gelu(x, approx: "tanh")',
      "                  ^^^^^^",
      "t.tokr:5:7: error: MatMul: inner dimensions differ: f32[2, 3] has K = 3 but f32[2, 3] has K = 2",
      "      y = matmul(x, x)",
      "          ^^^^^^^^^^^^",
    ),
  ],
  [
    "repeat count must be an integer",
    "model m(x: f32[2, 3]) -> (y) {\n  repeat 1.5 as i {\n    x = relu(x)\n  }\n  y = x\n}\n",
    lines(
      "t.tokr:2:10: error: repeat count must be a non-negative integer constant",
      "      repeat 1.5 as i {",
      "             ^^^",
    ),
  ],
  [
    "redefined constant",
    "dim = 3\ndim = 4\nmodel m(x: f32[2, dim]) -> (y) {\n  y = x\n}\n",
    lines("t.tokr:2:1: error: 'dim' is already defined", "    dim = 4", "    ^^^"),
  ],
  [
    "too many indices",
    "model m(x: f32[2, 3]) -> (y) {\n  y = x[0, 1, 2]\n}\n",
    lines(
      "t.tokr:2:7: error: 3 indices for a tensor of rank 2",
      "      y = x[0, 1, 2]",
      "          ^^^^^^^^^^",
    ),
  ],
  [
    "errors in a block that is never called are still reported",
    'block unused(x) {\n  return gelu(x, aproximate: "tanh")\n}\nmodel m(x: f32[2]) -> (y) {\n  y = x\n}\n',
    lines(
      "t.tokr:2:18: error: Gelu has no attribute 'aproximate'",
      '      return gelu(x, aproximate: "tanh")',
      "                     ^^^^^^^^^^",
      "  hint: did you mean `approximate`?",
    ),
  ],
  [
    "an error inside a repeated block is reported once",
    "block b(x) {\n  return relu(y)\n}\nmodel m(x: f32[2]) -> (y) {\n  repeat 3 as i {\n    x = b(x)\n  }\n  y = x\n}\n",
    lines(
      "t.tokr:2:15: error: unknown name 'y'",
      "      return relu(y)",
      "                  ^",
      "  hint: did you mean `x`?",
    ),
  ],
  [
    "a block that calls itself names the cycle",
    "block b(x) {\n  return b(x)\n}\nmodel m(x: f32[2]) -> (y) {\n  y = b(x)\n}\n",
    lines("t.tokr:2:10: error: block 'b' calls itself: b -> b", "      return b(x)", "             ^"),
  ],
  [
    "two blocks calling each other: one diagnostic naming both",
    "block a(x) {\n  return relu(c(x))\n}\nblock c(x) {\n  return a(x)\n}\nmodel m(x: f32[2]) -> (y) {\n  y = c(x)\n}\n",
    lines("t.tokr:5:10: error: block 'a' calls itself: a -> c -> a", "      return a(x)", "             ^"),
  ],
  [
    "recursion through a repeat in a block that is never called",
    "block r(x) {\n  repeat 2 as i {\n    x = r(x)\n  }\n  return x\n}\nmodel m(x: f32[2]) -> (y) {\n  y = x\n}\n",
    lines("t.tokr:3:9: error: block 'r' calls itself: r -> r", "        x = r(x)", "            ^"),
  ],
];

for (const [name, src, expected] of cases)
  test(`diagnostic: ${name}`, () => assert.equal(diags(src), expected));
