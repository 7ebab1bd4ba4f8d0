import assert from "node:assert/strict";
import { test } from "node:test";
import { checkTokr, compileTokr } from "../../compiler/lang/check.js";

const refs = (src: string): string[] =>
  [...compileTokr(src, "k.tokr").constants.values()].flatMap((c) => (c.ref ? [c.ref] : []));

// Per-layer weight keys are built from the repeat index: `+` joins strings and integers at compile time.
test("`+` joins strings and integers into file() keys, per repeat iteration", () => {
  const src = `block b(x, l: int) {
  p = "layer_" + l + "."
  param w: f32[2] = file(key: p + "w")
  param v: f32[2] = file(key: "m_" + (10 + 3 * l))
  return x * w + v
}
model m(x: f32[2]) -> (y) {
  repeat 2 as i {
    x = b(x, l: i)
  }
  y = x
}
`;
  assert.deepEqual(refs(src).sort(), ["layer_0.w", "layer_1.w", "m_10", "m_13"]);
});

test("a float joined with a string and a non-string key are errors", () => {
  const bad = (key: string): string[] =>
    checkTokr(
      `model m(x: f32[2]) -> (y) {\n  param w: f32[2] = file(key: ${key})\n  y = x * w\n}\n`,
    ).diagnostics.map((d) => d.message);
  assert.ok(
    bad(`"a" + 1.5`).includes("only strings and integers join with a string"),
    String(bad(`"a" + 1.5`)),
  );
  assert.ok(bad(`3`).includes("file(key:) must be a string"), String(bad(`3`)));
});
