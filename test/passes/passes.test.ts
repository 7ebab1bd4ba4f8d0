import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { printType, tensorType } from "../../compiler/ir/types.js";
import { sym } from "../../compiler/ir/sym.js";
import { assertValid } from "../../compiler/verify.js";
import { PassError, PassManager } from "../../passes/manager.js";
import { type Pattern, rewritePatterns } from "../../passes/rewrite.js";

// Cases that need graph surgery the text form cannot express (stale types, options);
// the rest live in the .ir files next to this one.

describe("shape-infer", () => {
  it("propagates a changed input shape through the graph", () => {
    const b = new GraphBuilder("g");
    const x = b.input("x", "f32", [2, 3]);
    const w = b.const("f32", [3], [1, 2, 3], "w");
    const a = b.op("Add", [x, w], {}, { names: ["a"] });
    const y = b.op("Relu", [a], {}, { names: ["y"] });
    const g = b.output(y);
    g.setType(x, tensorType("f32", [5, 3]));
    const pm = new PassManager("shape-infer");
    assert.equal(pm.run(g), true);
    assert.equal(printType(a.type), "f32[5, 3]");
    assert.equal(printType(y.type), "f32[5, 3]");
    assert.equal(pm.run(g), false, "a second run changes nothing");
  });

  it("errors name the node and the op's complaint", () => {
    const b = new GraphBuilder("g");
    const x = b.input("x", "f32", [2, 3]);
    const w = b.const("f32", [3], [1, 2, 3], "w");
    const g = b.output(b.op("Add", [x, w], {}, { names: ["sum"] }));
    g.setType(x, tensorType("f32", [2, 4]));
    assert.throws(
      () => new PassManager("shape-infer").run(g),
      (e: unknown) =>
        e instanceof PassError &&
        e.pass === "shape-infer" &&
        e.message.includes("%sum = Add") &&
        e.message.includes("cannot broadcast shapes [2, 4] and [3]"),
    );
  });

  it("keeps an adaptive prune's data-dependent symbol instead of minting a new one", () => {
    const b = new GraphBuilder("g");
    b.symbol("N");
    const x = b.input("x", "f32", [1, sym("N"), 4]);
    const s = b.input("s", "f32", [1, sym("N")]);
    const [y, idx] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 3, fuse: true }, 2);
    const g = b.output(y, idx);
    const before = [...g.symbols.keys()];
    assert.equal(printType(y.type), "f32[1, K0, 4]");
    assert.equal(new PassManager("shape-infer").run(g), false);
    assert.deepEqual([...g.symbols.keys()], before);
    assert.equal(printType(idx.type), "i64[1, K0 - 1]");
    assertValid(g);
  });
});

describe("fold-constants", () => {
  it("respects the element cap", () => {
    const build = () => {
      const b = new GraphBuilder("g");
      const c = b.const("f32", [2, 2], [1, -2, 3, -4], "c");
      return b.output(b.op("Relu", [c], {}, { names: ["r"] }));
    };
    const small = build();
    new PassManager("fold-constants", { foldMaxElements: 3 }).run(small);
    assert.equal(small.nodes.length, 1, "4 elements exceed a cap of 3");
    const ok = build();
    assert.equal(new PassManager("fold-constants", { foldMaxElements: 4 }).run(ok), true);
    assert.equal(ok.nodes.length, 0);
    const r = ok.constants.get(ok.outputs[0]);
    assert.equal(ok.outputs[0].name, "r", "the constant keeps the folded value's name");
    assert.deepEqual(Array.from(r!.data!.data), [1, 0, 3, 0]);
  });

  it("leaves ops that fail on their constant data for run time", () => {
    const b = new GraphBuilder("g");
    const data = b.const("f32", [3], [10, 20, 30], "data");
    const idx = b.const("i64", [1], [0], "idx");
    const g = b.output(b.op("Gather", [data, idx], { axis: 0 }, { names: ["y"] }));
    // Out-of-range index: the reference throws an OpError, which folding must not turn into a crash.
    g.constants.set(idx, {
      value: idx,
      data: { ...g.constants.get(idx)!.data!, data: new Float64Array([7]) },
    });
    assert.equal(new PassManager("fold-constants", { verify: false }).run(g), false);
    assert.equal(g.nodes.length, 1);
  });
});

describe("rewritePatterns", () => {
  it("a pattern that always fires fails loudly instead of looping", () => {
    const b = new GraphBuilder("g");
    const g = b.output(b.op("Neg", [b.input("x", "f32", [2])]));
    const spin: Pattern = { name: "spin", op: "Neg", match: (n) => (gr) => gr.setAttrs(n, n.attrs) };
    assert.throws(() => rewritePatterns(g, [spin]), /no fixpoint after 100 sweeps \(patterns spin\)/);
  });

  it("replacement values take over the node's uses and its dead producers go", () => {
    const b = new GraphBuilder("g");
    const x = b.input("x", "f32", [2]);
    const n1 = b.op("Neg", [x], {}, { names: ["n1"] });
    const n2 = b.op("Neg", [n1], {}, { names: ["n2"] });
    const g = b.output(b.op("Exp", [n2], {}, { names: ["y"] }));
    // -(-x) = x: the outer Neg is replaced, the inner one is then unused.
    const negNeg: Pattern = {
      name: "neg-neg",
      op: "Neg",
      match: (n, gr) => {
        const p = n.inputs[0] && gr.producer(n.inputs[0]);
        return p?.op === "Neg" ? [p.inputs[0]!] : undefined;
      },
    };
    const remarks: string[] = [];
    assert.equal(rewritePatterns(g, [negNeg], remarks), true);
    assert.deepEqual(
      g.nodes.map((n) => `${n.op}(${n.inputs.map((v) => v!.name).join()})`),
      ["Exp(x)"],
    );
    assert.deepEqual(remarks, ["neg-neg: %n2 = Neg"]);
    assert.equal(rewritePatterns(g, [negNeg]), false);
  });
});
