import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../util/helpers.js";
import { test } from "node:test";
import { attachPolicyFile, checkTokr, compileTokr } from "../../compiler/lang/check.js";
import { printGraph } from "../../compiler/ir/text/printer.js";
import { formatDiagnostic, LangError } from "../../grammar/diagnostics.js";
import { parseProgram } from "../../grammar/visitor.js";

const tiny = readFileSync(join(repoRoot, "examples", "tiny.tokr"), "utf8");
/** tiny.tokr with 16 tokens and batch 1, so token counts are static. */
const tinyStatic = tiny
  .replaceAll("B, N@token", "1, 16@token")
  .replace("cls: f32[B, dim]", "cls: f32[1, dim]");

const lines = (...ls: string[]): string => ls.join("\n");

/** Policy-related lines of the printed IR (declarations and the nodes that reference them). */
function policyLines(src: string): string[] {
  const r = checkTokr(src, "t.tokr");
  assert.deepEqual(r.diagnostics, []);
  return printGraph(r.graph!)
    .split("\n")
    .filter((l) => l.includes("policy"))
    .map((l) => l.trim());
}

test("selectors lex and parse: ranges, *, indices, and 0.5 stays a float", () => {
  const p = parseProgram(
    "policy p { blocks[2..11].attn: prune(keep: 0.5)  blocks.*.mlp: merge(r: 1) blocks.3: pool(mode: stride) }",
  );
  assert.deepEqual(p.diagnostics, []);
  const item = p.program!.items[0];
  assert.equal(item.k, "policy");
  if (item.k !== "policy") return;
  assert.deepEqual(
    item.rules.map((r) => r.selector.map((s) => [s.k, s.text, s.range?.lo, s.range?.hi])),
    [
      [
        ["name", "blocks", 2, 11],
        ["name", "attn", undefined, undefined],
      ],
      [
        ["name", "blocks", undefined, undefined],
        ["any", "*", undefined, undefined],
        ["name", "mlp", undefined, undefined],
      ],
      [
        ["name", "blocks", undefined, undefined],
        ["index", "3", undefined, undefined],
      ],
    ],
  );
  assert.deepEqual(item.rules[0].args[0].value, {
    k: "float",
    value: 0.5,
    pos: { line: 1, col: 44, len: 3 },
  });
});

test("a policy attaches IR policy objects to the first node of each scope, kv to its attention node", () => {
  const src =
    tiny +
    lines(
      "policy tome {",
      "  blocks[0..1].layer: merge(r: 2, proportional: false)",
      "  blocks.*.layer.attn: kv(sink: 4, window: 64)",
      "  blocks.1.layer.mlp: prune(keep: 0.5, protect: 1)",
      "}",
      "",
    );
  assert.deepEqual(policyLines(src), [
    'policy @tome.0 {kind = "merge", method = "bipartite", proportional = false, r = 2, selector = "blocks[0..1].layer", sites = ["blocks.0.layer", "blocks.1.layer"]} loc("t.tokr":39:3)',
    'policy @tome.1 {kind = "kv", selector = "blocks.*.layer.attn", sink = 4, sites = ["blocks.0.layer.attn", "blocks.1.layer.attn"], window = 64} loc("t.tokr":40:3)',
    'policy @tome.2 {fuse = false, keep = 0.5, kind = "prune", protect = 1, score = "cls", selector = "blocks.1.layer.mlp", sites = ["blocks.1.layer.mlp"]} loc("t.tokr":41:3)',
    '%3 = LayerNormalization(%x, %blocks.0.layer.g1) policy @tome.0 scope "blocks.0.layer" loc("t.tokr":26:16) : f32[B, N@token, 8]',
    '%23 = attention(%15, %18, %21) policy @tome.1 scope "blocks.0.layer.attn" loc("t.tokr":11:7) : f32[B, 2, N@token, 4]',
    '%51 = LayerNormalization(%47, %blocks.1.layer.g1) policy @tome.0 scope "blocks.1.layer" loc("t.tokr":26:16) : f32[B, N@token, 8]',
    '%71 = attention(%63, %66, %69) policy @tome.1 scope "blocks.1.layer.attn" loc("t.tokr":11:7) : f32[B, 2, N@token, 4]',
    '%87 = MatMul(%82, %blocks.1.layer.mlp.w1) policy @tome.2 scope "blocks.1.layer.mlp" loc("t.tokr":20:22) : f32[B, N@token, 32]',
  ]);
});

test("a policy from a separate file attaches to a compiled graph; errors name the policy file", () => {
  const g = compileTokr(tinyStatic, "tiny.tokr");
  attachPolicyFile(g, "policy s {\n  blocks.0.layer: merge(schedule: [3])\n}\n", "p.tokr");
  assert.deepEqual(g.policies.get("s.0")?.params.schedule, [3]);
  assert.deepEqual(
    g.nodes.filter((n) => n.policy === "s.0").map((n) => n.scope),
    ["blocks.0.layer"],
  );
  const g2 = compileTokr(tinyStatic, "tiny.tokr");
  assert.throws(
    () => attachPolicyFile(g2, "k = 1\npolicy s { blocks.9: pool(mode: temporal) }", "p.tokr"),
    (e: unknown) =>
      e instanceof LangError &&
      e.message === "p.tokr:1:1: error: a policy file holds only policies, but 'k' is a const",
  );
});

test("a file of policies only is checked for parameters without a model", () => {
  assert.deepEqual(checkTokr("policy p { blocks.*: merge(r: 4) }").diagnostics, []);
  assert.deepEqual(
    checkTokr("policy p { blocks.*: merge(r: 0) }").diagnostics.map((d) => d.message),
    ["'r' of merge must be an integer >= 1, got 0"],
  );
});

/** `policy p { RULES }` before the static tiny model; every diagnostic as `tokr check` prints it. */
function diags(rules: string): string {
  const src = `policy p {\n  ${rules}\n}\n` + tinyStatic;
  return checkTokr(src, "t.tokr")
    .diagnostics.map((d) => formatDiagnostic("t.tokr", src, d).join("\n"))
    .join("\n");
}

const cases: [string, string, string][] = [
  [
    "unknown directive with hint",
    "blocks.0.layer: prun(keep: 0.5)",
    lines(
      "t.tokr:2:19: error: unknown policy directive 'prun'",
      "      blocks.0.layer: prun(keep: 0.5)",
      "                      ^^^^",
      "  hint: did you mean `prune`?",
    ),
  ],
  [
    "unknown parameter with hint (and the missing keep/budget)",
    "blocks.0.layer: prune(kep: 0.5)",
    lines(
      "t.tokr:2:19: error: prune needs 'keep' or 'budget'",
      "      blocks.0.layer: prune(kep: 0.5)",
      "                      ^^^^^",
      "t.tokr:2:25: error: unknown parameter 'kep' of prune",
      "      blocks.0.layer: prune(kep: 0.5)",
      "                            ^^^",
      "  hint: did you mean `keep`?",
    ),
  ],
  [
    "keep ratio above 1",
    "blocks.0.layer: prune(keep: 1.5)",
    lines(
      "t.tokr:2:31: error: 'keep' of prune must be in (0, 1], got 1.5",
      "      blocks.0.layer: prune(keep: 1.5)",
      "                                  ^^^",
    ),
  ],
  [
    "keep ratio 0",
    "blocks.0.layer: prune(keep: 0)",
    lines(
      "t.tokr:2:31: error: 'keep' of prune must be in (0, 1], got 0",
      "      blocks.0.layer: prune(keep: 0)",
      "                                  ^",
    ),
  ],
  [
    "keep and budget together",
    "blocks.0.layer: prune(keep: 0.5, budget: 4)",
    lines(
      "t.tokr:2:36: error: prune takes 'keep' or 'budget', not both",
      "      blocks.0.layer: prune(keep: 0.5, budget: 4)",
      "                                       ^^^^^^",
    ),
  ],
  [
    "absolute budget below the protected tokens, both locations",
    "blocks.0.layer: prune(budget: 2, protect: 3)",
    lines(
      "t.tokr:2:25: error: prune budget 2 is below the 3 protected tokens (protect at 2:36)",
      "      blocks.0.layer: prune(budget: 2, protect: 3)",
      "                            ^^^^^^",
    ),
  ],
  [
    "enum value with hint",
    "blocks.0.layer: prune(keep: 0.5, score: clss)",
    lines(
      "t.tokr:2:43: error: 'score' of prune must be one of cls, attention_graph, transition, key_norm, got 'clss'",
      "      blocks.0.layer: prune(keep: 0.5, score: clss)",
      "                                              ^^^^",
      "  hint: did you mean `cls`?",
    ),
  ],
  [
    "selector matching nothing lists near scopes",
    "blocks.*.layer.atn: kv(window: 8)",
    lines(
      "t.tokr:2:3: error: selector 'blocks.*.layer.atn' matches no scope of the model",
      "      blocks.*.layer.atn: kv(window: 8)",
      "      ^^^^^^^^^^^^^^^^^^",
      "  hint: scopes at this depth: blocks.0.layer.attn, blocks.1.layer.attn, blocks.0.layer.mlp",
    ),
  ],
  [
    "two directives on one site, both locations",
    "blocks.*.layer: merge(r: 2)\n  blocks.0.layer: prune(keep: 0.5)",
    lines(
      "t.tokr:3:19: error: prune conflicts with merge at 2:19: both apply to the site of scope 'blocks.0.layer'",
      "      blocks.0.layer: prune(keep: 0.5)",
      "                      ^^^^^",
    ),
  ],
  [
    "merge r above half of the 16 static tokens",
    "blocks.0.layer: merge(r: 9)",
    lines(
      "t.tokr:2:25: error: merge r = 9 at scope 'blocks.0.layer' needs 18 tokens, but 16 are left",
      "      blocks.0.layer: merge(r: 9)",
      "                            ^",
    ),
  ],
  [
    "prune budget after a 2x2 pool left 16/4 = 4 tokens, both locations",
    "blocks.0.layer: pool(mode: spatial, size: 2)\n  blocks.1.layer: prune(budget: 8)",
    lines(
      "t.tokr:3:25: error: prune budget 8 at scope 'blocks.1.layer' exceeds the 4 tokens left after pool at 2:19",
      "      blocks.1.layer: prune(budget: 8)",
      "                            ^^^^^^",
    ),
  ],
  [
    "kv on a scope without attention",
    "blocks.0.layer.mlp: kv(window: 8)",
    lines(
      "t.tokr:2:3: error: kv needs an attention node, but scope 'blocks.0.layer.mlp' has none",
      "      blocks.0.layer.mlp: kv(window: 8)",
      "      ^^^^^^^^^^^^^^^^^^",
    ),
  ],
  [
    "merge schedule length unlike the site count",
    "blocks[0..1].layer: merge(schedule: [2, 2, 2])",
    lines(
      "t.tokr:2:29: error: merge schedule has 3 entries but 'blocks[0..1].layer' matches 2 sites",
      "      blocks[0..1].layer: merge(schedule: [2, 2, 2])",
      "                                ^^^^^^^^",
    ),
  ],
  [
    "kv budget below sink + window",
    "blocks.0.layer: kv(sink: 4, window: 8, budget: 10)",
    lines(
      "t.tokr:2:42: error: kv budget 10 is below sink + window + heavy = 12",
      "      blocks.0.layer: kv(sink: 4, window: 8, budget: 10)",
      "                                             ^^^^^^",
    ),
  ],
  [
    "missing required mode and a size below 2",
    "blocks.0.layer: pool(size: 1)",
    lines(
      "t.tokr:2:19: error: pool needs 'mode'",
      "      blocks.0.layer: pool(size: 1)",
      "                      ^^^^",
      "t.tokr:2:30: error: 'size' of pool must be an integer >= 2, got 1",
      "      blocks.0.layer: pool(size: 1)",
      "                                 ^",
    ),
  ],
  [
    "adaptive prune: threshold 0",
    "blocks.0.layer: prune(threshold: 0, keep: 0.5)",
    lines(
      "t.tokr:2:36: error: 'threshold' of prune must be a number > 0, got 0",
      "      blocks.0.layer: prune(threshold: 0, keep: 0.5)",
      "                                       ^",
    ),
  ],
  [
    "adaptive prune: a threshold above the CLS-attention scale (shares summing to 1)",
    "blocks.0.layer: prune(threshold: 1.5, keep: 0.5)",
    lines(
      "t.tokr:2:36: error: 'threshold' of prune must be in (0, 1] with score cls (each token's share of the CLS attention; shares sum to 1), got 1.5",
      "      blocks.0.layer: prune(threshold: 1.5, keep: 0.5)",
      "                                       ^^^",
      "  hint: a threshold above every score keeps only the protected tokens",
    ),
  ],
  [
    "adaptive prune: a threshold above the transition scale",
    "blocks.0.layer: prune(threshold: 4, budget: 8, score: transition)",
    lines(
      "t.tokr:2:36: error: 'threshold' of prune must be in (0, 3] with score transition (the magnitude change is in [0, 1], the direction change in [0, 2]), got 4",
      "      blocks.0.layer: prune(threshold: 4, budget: 8, score: transition)",
      "                                       ^",
      "  hint: a threshold above every score keeps only the protected tokens",
    ),
  ],
  [
    "adaptive prune: threshold not a number",
    "blocks.0.layer: prune(threshold: high, keep: 0.5)",
    lines(
      "t.tokr:2:36: error: 'threshold' of prune must be a number, got the name 'high'",
      "      blocks.0.layer: prune(threshold: high, keep: 0.5)",
      "                                       ^^^^",
    ),
  ],
  [
    "adaptive prune: a threshold without a capacity",
    "blocks.0.layer: prune(threshold: 0.02)",
    lines(
      "t.tokr:2:19: error: prune needs 'keep' or 'budget'",
      "      blocks.0.layer: prune(threshold: 0.02)",
      "                      ^^^^^",
      "  hint: an adaptive prune keeps at most ceil(keep * N) or budget tokens: give one as its capacity",
    ),
  ],
  [
    "merge after an adaptive prune, both locations",
    "blocks.0.layer: prune(threshold: 0.02, keep: 0.5)\n  blocks.1.layer: merge(r: 2)",
    lines(
      "t.tokr:3:19: error: merge at scope 'blocks.1.layer' cannot follow the adaptive prune at 2:19 (threshold: a data-dependent token count); only an adaptive prune may come after it",
      "      blocks.1.layer: merge(r: 2)",
      "                      ^^^^^",
    ),
  ],
  [
    "pool after an adaptive prune",
    "blocks.0.layer: prune(threshold: 0.02, keep: 0.5)\n  blocks.1.layer: pool(mode: stride)",
    lines(
      "t.tokr:3:19: error: pool at scope 'blocks.1.layer' cannot follow the adaptive prune at 2:19 (threshold: a data-dependent token count); only an adaptive prune may come after it",
      "      blocks.1.layer: pool(mode: stride)",
      "                      ^^^^",
    ),
  ],
  [
    "prune budget above an adaptive prune's capacity (ceil(16 * 0.5) = 8)",
    "blocks.0.layer: prune(threshold: 0.02, keep: 0.5)\n  blocks.1.layer: prune(threshold: 0.02, budget: 9)",
    lines(
      "t.tokr:3:42: error: prune budget 9 at scope 'blocks.1.layer' exceeds the 8 tokens left after prune at 2:19 (the adaptive prune's capacity)",
      "      blocks.1.layer: prune(threshold: 0.02, budget: 9)",
      "                                             ^^^^^^",
    ),
  ],
  [
    "a static prune after an adaptive prune",
    "blocks.0.layer: prune(threshold: 0.02, keep: 0.5)\n  blocks.1.layer: prune(keep: 0.5)",
    lines(
      "t.tokr:3:19: error: a static prune at scope 'blocks.1.layer' cannot follow the adaptive prune at 2:19: an example with fewer tokens than it keeps would get zero rows that later layers read as tokens",
      "      blocks.1.layer: prune(keep: 0.5)",
      "                      ^^^^^",
      "  hint: give it a 'threshold' too (its keep/budget is then the most it keeps)",
    ),
  ],
  [
    "quantization bits outside the allowed set",
    "blocks.0.layer: kv(bits: 3)",
    lines(
      "t.tokr:2:28: error: 'bits' of kv must be one of 2, 4, 8, 16, got 3",
      "      blocks.0.layer: kv(bits: 3)",
      "                               ^",
    ),
  ],
];

for (const [name, rules, expected] of cases)
  test(`policy diagnostic: ${name}`, () => assert.equal(diags(rules), expected));

test("a policy defined twice is an error at the second, naming the first", () => {
  const src =
    "policy p {\n  blocks.0.layer: merge(r: 2)\n}\npolicy p {\n  blocks.1.layer: merge(r: 2)\n}\n" +
    tinyStatic;
  assert.deepEqual(checkTokr(src, "t.tokr").diagnostics, [
    { pos: { line: 4, col: 8, len: 1 }, message: "policy 'p' is already defined at 1:8" },
  ]);
});

test("valid composition on static tokens: merge 16 -> 12, then prune budget 12 fits", () => {
  const r = checkTokr(
    "policy p {\n  blocks.0.layer: merge(r: 4)\n  blocks.1.layer: prune(budget: 12, protect: 1)\n}\n" +
      tinyStatic,
    "t.tokr",
  );
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual([...r.graph!.policies.keys()], ["p.0", "p.1"]);
  const r2 = checkTokr(
    "policy p {\n  blocks.0.layer: merge(r: 4)\n  blocks.1.layer: prune(budget: 13)\n}\n" + tinyStatic,
    "t.tokr",
  );
  assert.deepEqual(
    r2.diagnostics.map((d) => d.message),
    ["prune budget 13 at scope 'blocks.1.layer' exceeds the 12 tokens left after merge at 2:19"],
  );
});

test("adaptive prune: the threshold reaches the IR policy; key_norm (an unbounded norm) takes any threshold > 0", () => {
  const r = checkTokr(
    "policy p {\n  blocks.1.layer: prune(threshold: 50, budget: 8, score: key_norm, fuse: true)\n}\n" +
      tinyStatic,
    "t.tokr",
  );
  assert.deepEqual(r.diagnostics, []);
  const p = r.graph!.policies.get("p.0")!.params;
  assert.deepEqual([p.threshold, p.budget, p.score, p.fuse], [50, 8, "key_norm", true]);
});
