import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../util/helpers.js";
import { test } from "node:test";
import { formatProgram, stripPositions } from "../../grammar/format.js";
import { parseProgram } from "../../grammar/visitor.js";

function fmt(src: string): string {
  const p = parseProgram(src);
  assert.deepEqual(p.diagnostics, []);
  return formatProgram(p.program!);
}

test("examples/tiny.tokr is already in canonical layout", () => {
  const src = readFileSync(join(repoRoot, "examples", "tiny.tokr"), "utf8");
  assert.equal(fmt(src), src);
});

const MESSY = [
  "// header",
  "d=4 k = 2.0",
  "block f( x,n:int ){",
  " y=-(x+1)*  (x-2)-(3-x) // trailing",
  "  // before return",
  "return y[ :,1: ] }",
  "model m(x:f32[B,N @token,d])->(y){repeat 2 as i{x=f(x,n:d/2)}",
  "y=x*-1.0 }",
  "policy p{blocks[0..1].f:merge(r:2,proportional:false) blocks.*:kv(window:8,bits:4)",
  'blocks[1..1].f: pool(mode: "stride")}',
  "",
].join("\n");

const CANONICAL = [
  "// header",
  "d = 4",
  "k = 2.0",
  "",
  "block f(x, n: int) {",
  "  y = -(x + 1) * (x - 2) - (3 - x) // trailing",
  "  // before return",
  "  return y[:, 1:]",
  "}",
  "",
  "model m(x: f32[B, N@token, d]) -> (y) {",
  "  repeat 2 as i {",
  "    x = f(x, n: d / 2)",
  "  }",
  "  y = x * -1.0",
  "}",
  "",
  "policy p {",
  "  blocks[0..1].f: merge(r: 2, proportional: false)",
  "  blocks.*: kv(window: 8, bits: 4)",
  '  blocks[1].f: pool(mode: "stride")',
  "}",
  "",
].join("\n");

test("fmt lays out a messy program canonically, keeps comments, and is idempotent", () => {
  const messy = MESSY;
  const out = fmt(messy);
  assert.equal(out, CANONICAL);
  assert.equal(fmt(out), out);
  assert.deepEqual(stripPositions(parseProgram(out).program!), stripPositions(parseProgram(messy).program!));
});

test("fmt keeps the parentheses that associativity needs and drops the others", () => {
  assert.equal(fmt("a = (1 - (2 - 3)) + ((4 * 5)) / (6 / 7)\n"), "a = 1 - (2 - 3) + 4 * 5 / (6 / 7)\n");
  assert.equal(fmt("a = -(-x)[0]\nb = 1e-7\nc = 3.\n"), "a = -(-x)[0]\nb = 1e-7\nc = 3.0\n");
});
