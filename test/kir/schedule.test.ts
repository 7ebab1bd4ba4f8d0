import assert from "node:assert/strict";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { Graph } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import * as K from "../../compiler/kir/expr.js";
import { elementwiseKernel } from "../../compiler/kir/builder.js";
import type { Program } from "../../compiler/kir/program.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET, type Target } from "../../compiler/kir/types.js";
import { getOp, type OpDef, registerOp } from "../../compiler/ops/registry.js";
import { assertClose } from "../util/helpers.js";

// Test-only ops with fixed kernel rules, so these tests do not depend on which real ops have
// lowerings yet. Each reuses a real op's ports, inference and reference.
function testOp(from: string, name: string, extra: Pick<OpDef, "pointwise" | "view" | "lower">): OpDef {
  const d = getOp(from);
  if (!d) throw new Error(`no op ${from}`);
  return registerOp({
    name,
    doc: `test copy of ${from}`,
    inputs: d.inputs,
    outputs: d.outputs,
    attrs: d.attrs,
    infer: d.infer,
    reference: d.reference,
    pure: true,
    ...(d.symbolic ? { symbolic: d.symbolic } : {}),
    ...extra,
  });
}
testOp("Add", "test.add", { pointwise: ([a, b]) => K.add(a, b) });
testOp("Mul", "test.mul", { pointwise: ([a, b]) => K.mul(a, b) });
testOp("Relu", "test.relu", { pointwise: ([a]) => K.select(K.gt(a, 0), a, 0) });
testOp("Greater", "test.greater", { pointwise: ([a, b]) => K.gt(a, b) });
testOp("Reshape", "test.reshape", { view: true });
// Neg in two launches through a scratch buffer.
testOp("Neg", "test.neg2", {
  lower: (ctx) => {
    const x = ctx.inputs[0]!;
    const size = x.dims.reduce<number>((a, d) => a * (d as number), 1);
    const neg = elementwiseKernel(`${ctx.name}_neg`, size, 64, (kb) => {
      const src = kb.buffer("x", "f32", "read");
      const dst = kb.buffer("tmp", "f32", "read_write");
      return (i) => kb.store(dst, i, K.unary("neg", kb.load(src, i)));
    });
    const copy = elementwiseKernel(`${ctx.name}_copy`, size, 64, (kb) => {
      const src = kb.buffer("tmp", "f32", "read");
      const dst = kb.buffer("y", "f32", "read_write");
      return (i) => kb.store(dst, i, kb.load(src, i));
    });
    return {
      launches: [
        {
          kernel: neg,
          args: [
            { kind: "input", index: 0 },
            { kind: "scratch", name: "tmp" },
          ],
        },
        {
          kernel: copy,
          args: [
            { kind: "scratch", name: "tmp" },
            { kind: "output", index: 0 },
          ],
        },
      ],
      scratch: [{ name: "tmp", t: "f32", size }],
    };
  },
});
testOp("Neg", "test.nokernel_a", {});
testOp("Abs", "test.nokernel_b", {});

const f32 = (shape: number[], seed = 1): Tensor =>
  makeTensor(
    "f32",
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.7 + seed) * 2),
  );

/** Schedules, runs on the KIR interpreter and compares every output with the reference. */
function check(g: Graph, feeds: Map<string, Tensor>, target: Target = DEFAULT_TARGET): Program {
  const p = buildProgram(g, target);
  const got = runProgramOnKir(p, feeds);
  const want = runGraph(g, feeds);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, w] of want) assertClose(got.get(k)!, w, 1e-6, k);
  for (const k of p.kernels)
    assert.ok(k.params.length <= target.maxStorageBuffersPerStage, `${k.name} has ${k.params.length} params`);
  assert.equal(new Set(p.kernels.map((k) => k.name)).size, p.kernels.length, "kernel names are unique");
  return p;
}

test("Add -> Mul -> Relu with a broadcast input fuses into one kernel", () => {
  const b = new GraphBuilder("chain");
  const x = b.input("x", "f32", [2, 3]);
  const y = b.input("y", "f32", [3]);
  const z = b.input("z", "f32", [2, 3]);
  const a = b.op("test.add", [x, y]);
  const m = b.op("test.mul", [a, z]);
  const r = b.op("test.relu", [m]);
  const g = b.output(r);
  const p = check(
    g,
    new Map([
      ["x", f32([2, 3])],
      ["y", f32([3], 2)],
      ["z", f32([2, 3], 3)],
    ]),
  );
  assert.equal(p.kernels.length, 1);
  assert.equal(p.steps.length, 1);
  assert.deepEqual(p.steps[0].nodes, [a.name, m.name, r.name]);
  assert.equal(p.kernels[0].params.length, 4, "x, y, z in; only the relu result out");
  assert.deepEqual(
    p.buffers.map((buf) => buf.kind),
    ["input", "input", "input", "output"],
    "intermediates of the chain live in registers",
  );
});

test("a value used outside the chain is stored; fusion does not create a cycle through it", () => {
  const b = new GraphBuilder("side");
  const x = b.input("x", "f32", [4, 5]);
  const a = b.op("test.add", [x, x]);
  const r = b.op("test.relu", [a]);
  const n = b.op("test.neg2", [a]); // not pointwise: reads a
  const s = b.op("test.add", [r, n]); // cannot join a's kernel (it needs n, which needs a)
  const g = b.output(s);
  const p = check(g, new Map([["x", f32([4, 5])]]));
  // add+relu, neg2 (2 launches), final add
  assert.equal(p.steps.length, 4);
  assert.deepEqual(p.steps[0].nodes, [a.name, r.name]);
  const stored = p.steps[0].args.slice(1).map((id) => p.buffers[id].name);
  assert.deepEqual(stored, [a.name, r.name], "both the side value and the chain's result are stored");
  assert.deepEqual(p.steps[3].nodes, [s.name]);
});

test("views alias their input's storage; shape arithmetic for views needs no buffer", () => {
  const b = new GraphBuilder("views");
  const x = b.input("x", "f32", [2, 6]);
  const v0 = b.op("test.reshape", [x, b.const("i64", [2], [3, 4])]);
  const a = b.op("test.relu", [v0]);
  const v1 = b.op("test.reshape", [a, b.const("i64", [1], [12])]);
  const c = b.op("test.add", [
    v1,
    b.const(
      "f32",
      [12],
      Array.from({ length: 12 }, (_, i) => i),
    ),
  ]);
  const g = b.output(c);
  const p = check(g, new Map([["x", f32([2, 6])]]));
  const buf = (name: string) => p.buffers.find((q) => q.name === name)!;
  assert.equal(buf(v0.name).aliasOf, buf("x").id);
  assert.equal(buf(v1.name).aliasOf, buf(a.name).id);
  assert.equal(p.steps.length, 2, "relu ([3,4]) and add ([12]) have different shapes");
  assert.deepEqual(
    p.buffers.filter((q) => q.kind === "constant").map((q) => q.dtype),
    ["f32"],
    "the i64 shape constants of the views are not device buffers",
  );
  // Alias-aware live ranges: the view shares its root's range.
  assert.equal(buf(v1.name).firstUse, buf(a.name).firstUse);
  assert.equal(buf(v1.name).lastUse, 1);
  assert.equal(buf(c.name).lastUse, 1);
});

test("outputs that are inputs, views of inputs, constants or duplicates get their own storage", () => {
  const b = new GraphBuilder("outs");
  const x = b.input("x", "f32", [2, 3]);
  const vx = b.op("test.reshape", [x, b.const("i64", [1], [6])]);
  const r = b.op("test.relu", [x]);
  const vr = b.op("test.reshape", [r, b.const("i64", [2], [3, 2])]);
  const c = b.const("f32", [2], [1.5, -2]);
  const g = b.output(x, vx, r, r, vr, c);
  const p = check(g, new Map([["x", f32([2, 3])]]));
  const roots = p.outputs.map((id) => p.buffers[id].aliasOf ?? id);
  assert.equal(new Set(roots).size, 6, "every output has distinct storage");
  for (const id of roots) assert.ok(!["input", "constant"].includes(p.buffers[id].kind));
  // relu, then copies of x, vx, the second r, vr (aliases r, which the first r owns) and c.
  assert.equal(p.steps.length, 6);
  assert.equal(p.kernels.length, 3, "relu, and one copy kernel per size (6 and 2 elements)");
  for (const id of p.outputs) assert.equal(p.buffers[id].lastUse, p.steps.length - 1);
});

test("a view of an intermediate as output aliases without a copy", () => {
  const b = new GraphBuilder("outview");
  const x = b.input("x", "f32", [2, 3]);
  const r = b.op("test.relu", [x]);
  const vr = b.op("test.reshape", [r, b.const("i64", [1], [6])]);
  const p = check(b.output(vr), new Map([["x", f32([2, 3])]]));
  assert.equal(p.steps.length, 1);
  const out = p.buffers[p.outputs[0]];
  assert.equal(out.kind, "output");
  assert.equal(p.buffers[out.aliasOf!].name, r.name);
  assert.equal(p.buffers[out.aliasOf!].lastUse, 0);
});

test("every node without a kernel lowering is reported at once", () => {
  const b = new GraphBuilder("missing");
  const x = b.input("x", "f32", [3]);
  const a = b.op("test.nokernel_a", [x], {}, { scope: "blocks.0.attn" });
  const c = b.op("test.relu", [a]);
  const d = b.op("test.nokernel_b", [c]);
  b.op("test.nokernel_b", [x]); // dead: no kernel needed
  const g = b.output(d);
  assert.throws(
    () => buildProgram(g, DEFAULT_TARGET),
    (e: unknown) => {
      assert.ok(e instanceof ScheduleError);
      assert.deepEqual(e.problems, [
        `node %${a.name} in blocks.0.attn (test.nokernel_a): no kernel lowering for this op`,
        `node %${d.name} (test.nokernel_b): no kernel lowering for this op`,
      ]);
      return true;
    },
  );
});

test("identical kernels are deduplicated and equal constants share a buffer", () => {
  const b = new GraphBuilder("dedupe");
  const outs = [0, 1, 2].map((i) => {
    const x = b.input(`x${i}`, "f32", [8]);
    const w = b.const("f32", [8], [1, 2, 3, 4, 5, 6, 7, 8], `w${i}`);
    return b.op("test.relu", [b.op("test.mul", [x, w])]);
  });
  const g = b.output(...outs);
  const feeds = new Map([0, 1, 2].map((i) => [`x${i}`, f32([8], i)]));
  const p = check(g, feeds);
  assert.equal(p.steps.length, 3);
  assert.equal(p.kernels.length, 1);
  assert.equal(p.buffers.filter((q) => q.kind === "constant").length, 1);
  assert.deepEqual(
    p.steps.map((s) => p.buffers[s.args[1]].name),
    ["w0", "w0", "w0"],
  );
});

test("a chain needing more buffers than the target allows is split", () => {
  const b = new GraphBuilder("wide");
  const xs = [0, 1, 2, 3, 4, 5].map((i) => b.input(`x${i}`, "f32", [5]));
  let acc = xs[0];
  for (const x of xs.slice(1)) acc = b.op("test.add", [acc, x]);
  const g = b.output(acc);
  const feeds = new Map(xs.map((x, i) => [x.name, f32([5], i)]));
  const narrow: Target = { ...DEFAULT_TARGET, maxStorageBuffersPerStage: 4 };
  const p = check(g, feeds, narrow);
  assert.ok(p.steps.length >= 2);
  assert.equal(buildProgram(g, DEFAULT_TARGET).steps.length, 1, "7 buffers fit the default 8");
});

test("scratch buffers of a lowering become program buffers", () => {
  const b = new GraphBuilder("scratch");
  const x = b.input("x", "f32", [3, 3]);
  const n = b.op("test.neg2", [x]);
  const p = check(b.output(n), new Map([["x", f32([3, 3])]]));
  const s = p.buffers.filter((q) => q.kind === "scratch");
  assert.deepEqual(
    s.map((q) => [q.name, q.storage, q.size, q.firstUse, q.lastUse]),
    [[`${n.name}.tmp`, "f32", 9, 0, 1]],
  );
  assert.deepEqual(
    p.steps.map((st) => st.nodes),
    [[n.name], [n.name]],
  );
});

test("one program serves every binding of a symbolic batch", () => {
  const b = new GraphBuilder("sym");
  b.symbol("B");
  const x = b.input("x", "f32", [sym("B"), 3]);
  const y = b.input("y", "f32", [1, 3]);
  const g = b.output(b.op("test.relu", [b.op("test.add", [x, y])]));
  const p = buildProgram(g, DEFAULT_TARGET);
  for (const n of [1, 2, 7]) {
    const feeds = new Map([
      ["x", f32([n, 3])],
      ["y", f32([1, 3], 5)],
    ]);
    const want = runGraph(g, feeds).get(g.outputs[0].name)!;
    assertClose(runProgramOnKir(p, feeds).get(g.outputs[0].name)!, want, 1e-6, `B=${n}`);
  }
  assert.deepEqual(p.symbols, [{ name: "B" }]);
});

test("bool and i64 values cross the boundary in their IR dtypes", () => {
  const b = new GraphBuilder("dtypes");
  const x = b.input("x", "i64", [4]);
  const y = b.input("y", "i64", [4]);
  const s = b.op("test.add", [x, y]);
  const gt = b.op("test.greater", [s, y]);
  const g = b.output(s, gt);
  const feeds = new Map([
    ["x", makeTensor("i64", [4], [1, -2, 3, 0])],
    ["y", makeTensor("i64", [4], [5, 6, -7, 8])],
  ]);
  const p = check(g, feeds);
  assert.equal(p.steps.length, 1);
  const got = runProgramOnKir(p, feeds);
  assert.equal(got.get(s.name)!.dtype, "i64");
  assert.deepEqual([...got.get(gt.name)!.data], [1, 0, 1, 0]);
  assert.throws(
    () => runProgramOnKir(p, new Map([...feeds, ["x", makeTensor("i64", [4], [2 ** 40, 0, 0, 0])]])),
    /input 'x' element 0 is 1099511627776, outside the device's i32 range/,
  );
  assert.throws(() => runProgramOnKir(p, new Map([["x", feeds.get("x")!]])), /missing input 'y'/);
});

test("data-dependent symbols size buffers by their capacity", () => {
  const g = new Graph("cap");
  g.declareSymbol({ name: "K", capacity: 6 });
  const x = g.addInput(tensorType("f32", [sym("K"), 2]), "x");
  const n = g.addNode("test.relu", [x], [tensorType("f32", [sym("K"), 2])]);
  g.outputs.push(n.outputs[0]);
  const p = buildProgram(g, DEFAULT_TARGET);
  assert.deepEqual(
    p.buffers.map((q) => q.size),
    [12, 12],
  );
  assert.deepEqual(p.symbols, [{ name: "K", capacity: 6 }]);
  const got = runProgramOnKir(p, new Map([["x", f32([4, 2])]]));
  assertClose(
    got.get(n.outputs[0].name)!,
    runGraph(g, new Map([["x", f32([4, 2])]])).get(n.outputs[0].name)!,
  );
});

test("real elementwise ops: Add -> Mul -> Relu -> Sigmoid is one kernel and matches the reference", () => {
  const b = new GraphBuilder("real");
  b.symbol("N");
  const x = b.input("x", "f32", [sym("N"), 4]);
  const w = b.const("f32", [4], [0.5, -1, 2, 0.25]);
  const a = b.op("Add", [x, w]);
  const m = b.op("Mul", [a, x]);
  const r = b.op("Relu", [m]);
  const s = b.op("Sigmoid", [r]);
  const g = b.output(s, a);
  const p = check(g, new Map([["x", f32([3, 4])]]));
  assert.equal(p.kernels.length, 1);
  assert.deepEqual(p.steps[0].nodes, [a.name, m.name, r.name, s.name]);
  assert.deepEqual(
    p.outputs.map((id) => p.buffers[id].name),
    [s.name, a.name],
  );
});

test("adaptive pruning: buffers sized by capacity, the symbol takes its capacity, live rows match", () => {
  const b = new GraphBuilder("adaptive");
  const x = b.input("x", "f32", [1, 6, 2]);
  const s = b.input("s", "f32", [1, 6]);
  const [y, , count] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 4 }, 3);
  const r = b.op("Relu", [y]);
  const g = b.output(r, count);
  const p = buildProgram(g, DEFAULT_TARGET);
  const K = p.symbols.find((q) => q.capacity !== undefined)!;
  assert.equal(K.capacity, 4);
  assert.equal(p.buffers[p.outputs[0]].size, 8, "[1, K, 2] at capacity 4");
  const feeds = new Map([
    ["x", f32([1, 6, 2])],
    ["s", makeTensor("f32", [1, 6], [0.9, 0.1, 0.7, 0.2, 0.6, 0.3])],
  ]);
  const got = runProgramOnKir(p, feeds);
  const want = runGraph(g, feeds);
  assert.deepEqual([...got.get(count.name)!.data], [3]);
  assert.deepEqual([...got.get(r.name)!.shape], [1, 4, 2]);
  assert.deepEqual([...got.get(r.name)!.data].slice(0, 6), [...want.get(r.name)!.data]);
});

test("kernels differing only in an infinite or negative-zero constant are not merged", () => {
  const mk = (v: number): OpDef =>
    testOp("Relu", `test.max_with_${String(v).replace(/\W/g, "_")}_${Object.is(v, -0) ? "neg0" : ""}`, {
      pointwise: ([a]) => K.max(a, K.lit(v, "f32")),
    });
  const ops = [-Infinity, NaN, Infinity, 0, -0].map(mk);
  const b = new GraphBuilder("consts");
  const x = b.input("x", "f32", [4]);
  const outs = ops.map((d) => b.op(d.name, [x]));
  const p = buildProgram(b.output(...outs), DEFAULT_TARGET);
  assert.equal(p.steps.length, 5);
  assert.equal(p.kernels.length, 5);
});

test("a diamond of pointwise nodes is one kernel storing only its result", () => {
  const b = new GraphBuilder("diamond");
  const x = b.input("x", "f32", [3, 4]);
  const a = b.op("test.add", [x, x]);
  const r = b.op("test.relu", [a]);
  const m = b.op("test.mul", [a, a]);
  const d = b.op("test.add", [r, m]);
  const p = check(b.output(d), new Map([["x", f32([3, 4])]]));
  assert.equal(p.steps.length, 1);
  assert.deepEqual(p.steps[0].nodes, [a.name, r.name, m.name, d.name]);
  assert.deepEqual(
    p.steps[0].args.map((id) => p.buffers[id].name),
    ["x", d.name],
  );
});

test("a lowered kernel with more storage buffers than the target allows is an error", () => {
  const b = new GraphBuilder("limit");
  const x = b.input("x", "f32", [3]);
  const g = b.output(b.op("test.neg2", [x], {}, { scope: "blocks.1" }));
  assert.throws(
    () => buildProgram(g, { ...DEFAULT_TARGET, maxStorageBuffersPerStage: 1 }),
    /node %\S+ in blocks\.1 \(test\.neg2\): kernel \S+_neg has 2 storage buffers, more than the target's 1 per stage/,
  );
});

test("a graph thousands of units deep schedules (no recursion limit)", () => {
  const b = new GraphBuilder("deep");
  let v = b.input("x", "f32", [2, 3]);
  const flat = b.const("i64", [1], [6]);
  const square = b.const("i64", [2], [2, 3]);
  for (let i = 0; i < 4000; i++) {
    v = b.op("test.relu", [v]);
    v = b.op("test.reshape", [v, i % 2 === 0 ? flat : square]);
  }
  const g = b.output(v);
  const p = buildProgram(g, DEFAULT_TARGET);
  assert.equal(p.steps.length, 4000);
  assert.equal(p.kernels.length, 1, "relu over [2,3] and over [6] read and write by flat index alike");
});

test("fused and copy kernels keep to the target's workgroup size limit", () => {
  const b = new GraphBuilder("wg");
  const x = b.input("x", "f32", [5, 7]);
  const r = b.op("test.relu", [b.op("test.add", [x, x])]);
  const small: Target = { ...DEFAULT_TARGET, maxWorkgroupInvocations: 16 };
  const p = check(b.output(r, r, x), new Map([["x", f32([5, 7])]]), small);
  assert.equal(p.steps.length, 3);
  for (const k of p.kernels) assert.deepEqual(k.workgroupSize, [16, 1, 1], k.name);
});
