import assert from "node:assert/strict";
import { test } from "node:test";
import { Graph } from "../../compiler/ir/graph.js";
import { tensorType } from "../../compiler/ir/types.js";

const T = tensorType("f32", [4]);

function chain(): { g: Graph; a: ReturnType<Graph["addNode"]>; b: ReturnType<Graph["addNode"]> } {
  const g = new Graph("g");
  const x = g.addInput(T, "x");
  const a = g.addNode("Relu", [x], [T], {}, { names: ["a"] });
  const b = g.addNode("Neg", [a.outputs[0]], [T], {}, { names: ["b"] });
  return { g, a, b };
}

test("insertBefore and insertAfter place the new node next to its anchor, with its attrs and options", () => {
  const { g, a, b } = chain();
  const before = g.insertBefore(b, "Abs", [a.outputs[0]], [T], { k: 2 }, { names: ["m"], scope: "s" });
  const after = g.insertAfter(a, "Exp", [a.outputs[0]], [T]);
  assert.deepEqual(
    g.nodes.map((n) => n.op),
    ["Relu", "Exp", "Abs", "Neg"],
  );
  assert.equal(before.outputs[0].name, "m");
  assert.deepEqual(before.attrs, { k: 2 });
  assert.equal(before.scope, "s");
  assert.deepEqual(after.attrs, {});
  assert.equal(g.insertAfter(b, "Sqrt", [b.outputs[0]], [T]), g.nodes[4], "after the last node");
});

test("inserting next to a node not in the graph names it and adds no values", () => {
  const { g, a } = chain();
  const other = chain().b;
  for (const [insert, what] of [
    [() => g.insertBefore(other, "Abs", [a.outputs[0]], [T], {}, { names: ["q"] }), "insertBefore"],
    [() => g.insertAfter(other, "Abs", [a.outputs[0]], [T], {}, { names: ["q"] }), "insertAfter"],
  ] as const) {
    assert.throws(insert, { message: `${what}: node %b is not in the graph` });
    assert.equal(g.valueByName("q"), undefined);
    assert.equal(g.nodes.length, 2);
  }
});
