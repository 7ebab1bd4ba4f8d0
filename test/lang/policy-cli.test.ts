import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";

let dir = "";

async function tokr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

const MODEL =
  "block mix(x) {\n  return x * 2.0\n}\nmodel m(x: f32[1, 8@token, 4]) -> (y) {\n  repeat 2 as i {\n    x = mix(x)\n  }\n  y = x\n}\n";
const POLICY = "policy p {\n  blocks.*.mix: merge(r: 2)\n}\n";
const BAD_POLICY = "policy p {\n  blocks.*.mx: merge(r: 2)\n}\n";
/** Two blocks `x + attention(x, x, x)` over 8 tokens of width 2 (one head). */
const ATT_MODEL = [
  "block attn(x) {",
  "  q = transpose(reshape(x, [0, 0, 1, 2]), perm: [0, 2, 1, 3])",
  "  return reshape(transpose(attention(q, q, q), perm: [0, 2, 1, 3]), [0, 0, 2])",
  "}",
  "block layer(x) {",
  "  return x + attn(x)",
  "}",
  "model m(x: f32[1, 8@token, 2]) -> (y) {",
  "  repeat 2 as i {",
  "    x = layer(x)",
  "  }",
  "  y = x",
  "}",
  "",
].join("\n");
const NOTE = "tokr: note: p.tokr: 1 policy object(s) attached to 2 site(s)\n";

describe("tokr --policy FILE", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-policy-"));
    writeFileSync(join(dir, "m.tokr"), MODEL);
    writeFileSync(join(dir, "p.tokr"), POLICY);
    writeFileSync(join(dir, "bad.tokr"), BAD_POLICY);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("check accepts a policy file and a policies-only file", async () => {
    assert.deepEqual(await tokr("check", "m.tokr", "--policy", "p.tokr"), { code: 0, out: "", err: NOTE });
    assert.deepEqual(await tokr("check", "p.tokr"), { code: 0, out: "", err: "" });
  });

  it("check reports a selector matching nothing in the policy file", async () => {
    const r = await tokr("check", "m.tokr", "--policy", "bad.tokr");
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      [
        "bad.tokr:2:3: error: selector 'blocks.*.mx' matches no scope of the model",
        "      blocks.*.mx: merge(r: 2)",
        "      ^^^^^^^^^^^",
        "  hint: scopes at this depth: blocks.0.mix, blocks.1.mix",
        "",
      ].join("\n"),
    );
  });

  it("inspect and compile apply the policy: a site outside any transformer block is an error naming it", async () => {
    // The model has no attention, so the reduction passes find no block (test/cli/report-*.test.ts apply real ones).
    for (const argv of [
      ["inspect", "m.tokr", "--policy", "p.tokr"],
      ["compile", "m.tokr", "--target", "cpu", "-o", "out", "--policy", "p.tokr"],
    ]) {
      const r = await tokr(...argv);
      assert.equal(r.code, 1);
      assert.match(
        r.err,
        /merge @p\.0 on scope 'blocks\.0\.mix' at p\.tokr:2:3: the site node .* is not inside a transformer block/,
      );
    }
  });

  it("inspect --policy with an adaptive prune reports that layer's tokens as '<= capacity'", async () => {
    writeFileSync(join(dir, "att.tokr"), ATT_MODEL);
    writeFileSync(
      join(dir, "ats.tokr"),
      "policy ats {\n  blocks.1.layer: prune(threshold: 0.1, keep: 0.5, protect: 1)\n}\n",
    );
    const r = await tokr("inspect", "att.tokr", "--policy", "ats.tokr");
    assert.equal(r.code, 0, r.err);
    const row = (layer: string): string[] =>
      r.out
        .split("\n")
        .find((l) => l.startsWith(layer))!
        .split(/\s+/);
    // layer, tokens before, tokens after, ...: 8 tokens, then at most ceil(8 * 0.5) = 4 per example.
    assert.deepEqual(row("blocks.0").slice(0, 3), ["blocks.0", "8", "8"]);
    assert.deepEqual(row("blocks.1").slice(0, 4), ["blocks.1", "8", "<=", "4"]);
    assert.match(r.out, /note: '<= N' is an adaptive prune's capacity/);
    const json = await tokr("inspect", "att.tokr", "--policy", "ats.tokr", "--json");
    const layers = (
      JSON.parse(json.out) as {
        layers: { layer: string; tokensAfter: number; tokensAfterAtMost?: boolean }[];
      }
    ).layers;
    assert.deepEqual(
      layers.filter((l) => l.layer.startsWith("blocks")).map((l) => [l.tokensAfter, l.tokensAfterAtMost]),
      [
        [8, undefined],
        [4, true],
      ],
    );
  });

  it("fmt prints the canonical layout; --write rewrites the file", async () => {
    writeFileSync(join(dir, "messy.tokr"), "policy q{blocks.*:merge(r:1)}");
    const canonical = "policy q {\n  blocks.*: merge(r: 1)\n}\n";
    assert.deepEqual(await tokr("fmt", "messy.tokr"), { code: 0, out: canonical, err: "" });
    assert.deepEqual(await tokr("fmt", "messy.tokr", "--write"), { code: 0, out: "", err: "" });
    assert.equal(readFileSync(join(dir, "messy.tokr"), "utf8"), canonical);
  });
});
