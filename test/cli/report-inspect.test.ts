import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { parseGraph } from "../../compiler/ir/text/parser.js";
import { graphReport } from "../../compiler/report/layers.js";
import { repoRoot } from "../util/helpers.js";

let dir = "";

async function tokr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

// Two layers: MatMul [2, 4] x [4, 3] (2*2*4*3 = 48 FLOPs), Relu on 6 elements (6 FLOPs).
// Activations: x 32 bytes, h 24, y 24. Step 0 holds x and h (56), step 1 h and y (48): peak 56.
const TINY = `graph @tiny(%x: f32[B, 4]) {
  sym B
  const %w: f32[4, 3] = dense<[1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]>
  %h = MatMul(%x, %w) scope "blocks.0" : f32[B, 3]
  %y = Relu(%h) scope "blocks.1.act" : f32[B, 3]
  return %y
}
`;

describe("per-layer report (compiler/report)", () => {
  it("hand-computed FLOPs per layer and peak activation memory of a tiny graph", () => {
    const g = parseGraph(TINY, "tiny.ir");
    const sym = graphReport(g);
    assert.deepEqual(
      sym.layers.map((l) => [l.layer, l.tokens, typeof l.flops === "number" ? l.flops : "symbolic"]),
      [
        ["blocks.0", null, "symbolic"],
        ["blocks.1", null, "symbolic"],
      ],
    );
    assert.equal(sym.peakActivationBytes, null);
    assert.deepEqual(sym.unbound, ["B"]);
    const r = graphReport(g, new Map([["B", 2]]));
    assert.deepEqual(
      r.layers.map((l) => [l.layer, l.flops]),
      [
        ["blocks.0", 48],
        ["blocks.1", 6],
      ],
    );
    assert.equal(r.totalFlops, 54);
    assert.equal(r.peakActivationBytes, 56);
    assert.deepEqual(r.unbound, []);
  });
});

describe("tokr inspect --policy / --html / --bind", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-report-"));
    writeFileSync(join(dir, "tiny.ir"), TINY);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("--bind and --json give the tiny graph's numbers", async () => {
    const r = await tokr("inspect", "tiny.ir", "--bind", "B=2", "--json");
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as {
      layers: { layer: string; flopsBefore: number }[];
      before: { totalFlops: number; peakActivationBytes: number };
    };
    assert.deepEqual(
      j.layers.map((l) => [l.layer, l.flopsBefore]),
      [
        ["blocks.0", 48],
        ["blocks.1", 6],
      ],
    );
    assert.deepEqual([j.before.totalFlops, j.before.peakActivationBytes], [54, 56]);
    const bad = await tokr("inspect", "tiny.ir", "--bind", "B2");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--bind takes SYMBOL=INT pairs/);
  });

  it("vit-tiny with its ToMe policy: 197 -> 101 tokens over 12 blocks, fewer FLOPs, HTML with one point per layer", async () => {
    const model = join(repoRoot, "examples", "vit-tiny.tokr");
    const policy = join(repoRoot, "examples", "vit-tiny.policy.tokr");
    const r = await tokr("inspect", model, "--policy", policy, "--bind", "B=1", "--json", "--html", "r.html");
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as {
      layers: { layer: string; tokensBefore: number | null; tokensAfter: number | null }[];
      before: { totalFlops: number; peakActivationBytes: number };
      after: { totalFlops: number; peakActivationBytes: number };
      flopsRatio: number;
    };
    const blocks = j.layers.filter((l) => l.layer.startsWith("blocks."));
    assert.deepEqual(
      blocks.map((l) => l.tokensBefore),
      new Array(12).fill(197),
    );
    // merge(r: 8) after each block's attention: block K attends over 197 - 8K tokens.
    assert.deepEqual(
      blocks.map((l) => l.tokensAfter),
      Array.from({ length: 12 }, (_, k) => 197 - 8 * k),
    );
    assert.ok(
      j.after.totalFlops < j.before.totalFlops &&
        Math.abs(j.flopsRatio - j.after.totalFlops / j.before.totalFlops) < 1e-12,
    );
    assert.ok(j.after.peakActivationBytes <= j.before.peakActivationBytes);
    const html = readFileSync(join(dir, "r.html"), "utf8");
    assert.ok(!/<script|<link|src=/i.test(html), "self-contained");
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svgs.length, 2);
    const points = (svg: string, series: string): string[] =>
      [...svg.matchAll(new RegExp(`class="pt ${series}" data-layer="([^"]+)"`, "g"))].map((m) => m[1]);
    // Tokens: the 12 layers with an attention; FLOPs: every layer (stem, 12 blocks, head).
    assert.deepEqual(
      points(svgs[0], "after"),
      blocks.map((l) => l.layer),
    );
    assert.deepEqual(
      points(svgs[0], "before"),
      blocks.map((l) => l.layer),
    );
    assert.deepEqual(
      points(svgs[1], "after"),
      j.layers.map((l) => l.layer),
    );
    assert.equal(j.layers.length, 14);
  });

  it("text output names both sides and the ratio", async () => {
    const model = join(repoRoot, "examples", "vit-tiny.tokr");
    const policy = join(repoRoot, "examples", "vit-tiny.policy.tokr");
    const r = await tokr("inspect", model, "--policy", policy);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^blocks\.11 +197 +109 /m);
    assert.match(r.out, /^total flops: \d+\*B -> \d+\*B \(ratio 0\.\d{3}, -\d+\.\d%\)$/m);
    assert.match(r.out, /^peak activation memory \(bytes\): \? -> \? \(bind B with --bind to compute\)$/m);
  });
});
