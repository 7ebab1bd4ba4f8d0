import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { tensorType } from "../../compiler/ir/types.js";
import {
  describePasses,
  type Pass,
  PassError,
  PassManager,
  parsePipeline,
  PipelineError,
} from "../../passes/manager.js";

/** x: f32[4] -> Relu -> %y (output), plus a dead Exp. */
function small(): Graph {
  const b = new GraphBuilder("small");
  const x = b.input("x", "f32", [4]);
  b.op("Exp", [x], {}, { names: ["dead"] });
  const y = b.op("Relu", [x], {}, { names: ["y"] });
  return b.output(y);
}

/** Declares %y one element longer than Relu gives: invalid IR. */
const breakTypes: Pass = {
  name: "break-types",
  description: "test pass leaving a wrong declared type",
  run(g) {
    g.setType(g.valueByName("y")!, tensorType("f32", [5]));
    return true;
  },
};

const throws: Pass = {
  name: "throws",
  description: "test pass that fails",
  run() {
    throw new Error("boom");
  },
};

describe("pass manager", () => {
  it("verification failure names the pass and carries diagnostics and the IR dump", () => {
    const pm = new PassManager([...parsePipeline("dce"), breakTypes]);
    assert.throws(
      () => pm.run(small()),
      (e: unknown) => {
        assert.ok(e instanceof PassError);
        assert.equal(e.pass, "break-types");
        assert.match(e.message, /verification failed after pass 'break-types'/);
        // The verifier's own words: the declared type against the inferred one.
        assert.match(e.message, /%y is declared f32\[5\] but the op gives f32\[4\]/);
        assert.match(e.message, /\/\/ IR after pass 'break-types':/);
        assert.ok(e.diagnostics.length >= 1);
        // The dump is the graph after the failing pass: dce already removed %dead, %y has the broken type.
        assert.match(e.dump, /graph @small/);
        assert.match(e.dump, /%y = Relu\(%x\) : f32\[5\]/);
        assert.doesNotMatch(e.dump, /Exp/);
        assert.ok(e.message.includes(e.dump));
        return true;
      },
    );
    // The passes before the failure were timed.
    assert.deepEqual(
      pm.timings.map((t) => t.pass),
      ["dce", "break-types"],
    );
  });

  it("without verification the broken graph passes through", () => {
    const g = small();
    assert.equal(new PassManager([breakTypes], { verify: false }).run(g), true);
    assert.equal(g.valueByName("y")!.type.dims[0], 5);
  });

  it("an exception inside a pass becomes a PassError naming the pass", () => {
    assert.throws(
      () => new PassManager([throws]).run(small()),
      (e: unknown) =>
        e instanceof PassError && e.pass === "throws" && /pass 'throws' failed: boom/.test(e.message),
    );
  });

  it("unknown pass names are an error listing the known passes", () => {
    assert.throws(
      () => new PassManager("dce,frobnicate"),
      (e: unknown) => {
        assert.ok(e instanceof PipelineError);
        assert.match(e.message, /unknown pass 'frobnicate'/);
        for (const p of ["shape-infer", "canonicalize", "fold-constants", "dce", "default"])
          assert.ok(e.message.includes(p), p);
        return true;
      },
    );
    assert.throws(() => parsePipeline("dce,,dce"), /empty pass name/);
  });

  it("pipeline strings: order kept, blanks trimmed, named pipelines expanded", () => {
    assert.deepEqual(
      parsePipeline(" dce , fold-constants").map((p) => p.name),
      ["dce", "fold-constants"],
    );
    assert.deepEqual(
      parsePipeline("dce,default").map((p) => p.name),
      ["dce", "shape-infer", "canonicalize", "fold-constants", "dce"],
    );
    assert.deepEqual(parsePipeline(""), []);
    assert.match(describePasses(), /^default\s+.*\(shape-infer,canonicalize,fold-constants,dce\)$/m);
  });

  it("records one timing per pass with its change flag, and prints them", () => {
    const g = small();
    const pm = new PassManager("shape-infer,dce,dce");
    assert.equal(pm.run(g), true);
    assert.deepEqual(
      pm.timings.map((t) => [t.pass, t.changed]),
      [
        ["shape-infer", false],
        ["dce", true],
        ["dce", false],
      ],
    );
    for (const t of pm.timings) assert.ok(Number.isFinite(t.ms) && t.ms >= 0);
    const table = pm.formatTimings().split("\n");
    assert.equal(table.length, 4);
    assert.match(table[0], /^\s*\d+\.\d{3} ms {2}shape-infer\s+unchanged$/);
    assert.match(table[1], /ms {2}dce\s+changed$/);
    assert.match(table[3], /ms {2}total/);
    assert.ok(pm.remarks.some((r) => r.includes("dce: erased %dead = Exp")));
    // A second run starts a fresh record.
    assert.equal(pm.run(g), false);
    assert.equal(pm.timings.length, 3);
  });
});
