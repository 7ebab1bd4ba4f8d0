import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Graph, type Value } from "../../compiler/ir/graph.js";
import { ceildiv, type Dim, mul, sub, sym } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import { IRParseError, parseGraph } from "../../compiler/ir/text/parser.js";
import { printAttrValue, printGraph } from "../../compiler/ir/text/printer.js";
import { verifyGraph } from "../../compiler/verify.js";

function roundTrip(text: string): string {
  const once = printGraph(parseGraph(text));
  assert.equal(printGraph(parseGraph(once)), once);
  return once;
}

/** The messages `parseGraph` reports, as `line:col: message`. */
function errorsOf(text: string): string[] {
  try {
    parseGraph(text, "t.ir");
  } catch (e) {
    assert.ok(e instanceof IRParseError);
    for (const d of e.diagnostics) assert.equal(d.file, "t.ir");
    assert.equal(
      e.message,
      e.diagnostics.map((d) => `t.ir:${d.line}:${d.col}: error: ${d.message}`).join("\n"),
    );
    return e.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`);
  }
  return assert.fail("expected a parse error");
}

describe("IR text round trip", () => {
  it("keeps a text in printed form unchanged (every syntax feature)", () => {
    const text = `graph @tiny(%x: f32[B@batch, N@token, 4], %mask: bool[B, N], %"onnx::in 0": f16[]) {
  sym B
  sym N
  sym K0 <= ceildiv(7*N, 10)
  sym node
  policy @p0 {a = -3, b = 0.00001, c = 1e-7, d = -inf, e = nan, f = inf, g = -0, h = true, i = false} loc("vit.tokr":30:3)
  policy @"odd name" {dims = [B, 2*N + 1, ceildiv(7*N, 10) - 1, min(197, N)], empty = [], floats = [0.5, -2.25, 1.5e+300], names = ["a", "b\\"c"], nested = "x\\ny"}
  const %w: f32[4, 4] = dense<[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0.10000000149011612, -0, nan, -inf]>
  const %big: f32[64, 64] = ref<"blocks.0.attn.qkv.weight">
  const %half: f16[3] = dense<[0.0999755859375, 65504, -inf]> ref<"h">
  const %long: i64[2] = dense<[-9007199254740991, 42]>
  const %flags: bool[3] = dense<[true, false, true]>
  const %bytes: i8[2] = dense<[-128, 127]>
  const %nothing: f32[2]
  %h = MatMul(%x, %w) : f32[B@batch, N@token, 4]
  %y, %idx = tokens.prune(%h, %mask, none) {keep = ceildiv(7*N, 10)} policy @p0 scope "blocks.0" loc("vit.tokr":12:5 node "/blocks.0/Add") : f32[B, ceildiv(7*N, 10), 4], i64[B, ceildiv(7*N, 10)]
  %a = Relu(%y) loc("f.tokr") : f32[B, ceildiv(7*N, 10), 4]
  %b = Relu(%a) loc("f.tokr":7) : f32[B, ceildiv(7*N, 10), 4]
  %c = Relu(%b) loc(node "/Relu_3") : f32[B, ceildiv(7*N, 10), 4]
  %d = Relu(%c) policy @"odd name" loc(:2:9) : f32[B, ceildiv(7*N, 10), 4]
  %e.1 = Neg(%d) scope "blocks.1.attn" : f32[B, K0, node]
  Print(%e.1, none) {graph = "kw", "strange key" = 1}
  %0 = Shape(%x) : i64[3]
  return %e.1, %idx, %0
}
`;
    assert.equal(roundTrip(text), text);
  });

  it("canonicalises dims through compiler/ir/sym.ts", () => {
    const g = parseGraph(`graph @g(%x: f32[N + N, 3*(N - 1) + 3, floordiv(2*N + 1, 2), mod(N, 4)]) {
  sym N
  return %x
}`);
    assert.equal(printGraph(g).split("\n")[0], "graph @g(%x: f32[2*N, 3*N, N, N - 4*floordiv(N, 4)]) {");
  });

  it("reads attribute values into AttrValues", () => {
    const g = parseGraph(`graph @g(%x: f32[N]) {
  sym N
  %y = Foo(%x) {f = 1e-5, i = -7, l = [1, N - 1], n = -nan, s = ["p", "q"], t = true, z = -0} : f32[N]
  return %y
}`);
    const a = g.nodes[0].attrs;
    assert.equal(a.f, 0.00001);
    assert.equal(a.i, -7);
    assert.ok(Number.isNaN(a.n));
    assert.ok(Object.is(a.z, -0));
    assert.equal(a.t, true);
    assert.deepEqual(a.s, ["p", "q"]);
    const l = a.l as readonly Dim[];
    assert.equal(l[0], 1);
    assert.equal(printAttrValue(l[1]), "N - 1");
    assert.equal(printAttrValue(-Infinity), "-inf");
    assert.equal(printAttrValue([0.5, sym("K")]), "[0.5, K]");
  });

  it("holds constant data as tensors of the declared dtype", () => {
    const g = parseGraph(`graph @g() {
  const %h: f16[2] = dense<[0.1, 1e-9]>
  const %b: bool[2] = dense<[true, 0]>
  const %f: f32[1] = dense<[0.1]>
  return %h
}`);
    const [h, b, f] = [...g.constants.values()];
    // 0.1 in half precision is 1638/16384 = 0.0999755859375; 1e-9 underflows to 0.
    assert.deepEqual(Array.from(h.data!.data), [0.0999755859375, 0]);
    assert.deepEqual(Array.from(b.data!.data), [1, 0]);
    assert.equal(f.data!.data[0], Math.fround(0.1));
    assert.deepEqual([...f.data!.shape], [1]);
  });

  it("elides large constants as references", () => {
    const g = parseGraph(`graph @g() {
  const %a: f32[3] = dense<[1, 2, 3]>
  const %b: f32[2] = dense<[1, 2]> ref<"model.b">
  const %c: f32[2] = dense<[4, 5]>
  return %a
}`);
    assert.deepEqual(printGraph(g, { elideConstantsOver: 2 }).split("\n").slice(1, 4), [
      '  const %a: f32[3] = ref<"a">',
      '  const %b: f32[2] = dense<[1, 2]> ref<"model.b">',
      "  const %c: f32[2] = dense<[4, 5]>",
    ]);
    assert.deepEqual(
      printGraph(g, { elideConstantsOver: 1 }).split("\n")[2],
      '  const %b: f32[2] = ref<"model.b">',
    );
  });
});

describe("IR printer golden", () => {
  it("prints a graph built with the Graph API", () => {
    const g = new Graph("golden");
    const [B, N] = [sym("B"), sym("N")];
    g.declareSymbol({ name: "B" });
    g.declareSymbol({ name: "N" });
    g.declareSymbol({ name: "K", capacity: ceildiv(mul(7, N), 10) });
    g.policies.set("keep70", {
      name: "keep70",
      params: { kind: "prune", keep: 0.7 },
      loc: { file: "m.tokr", line: 2, col: 1 },
    });
    const t = tensorType("f32", [B, N, 4], ["batch", "token", null]);
    const x = g.addInput(t, "x");
    const w = g.addConstant(tensorType("f32", [4]), "w", makeTensor("f32", [4], [0.5, -1, 0.25, 2]));
    const big = g.addConstant(tensorType("f32", [2, 8]), "big", makeTensor("f32", [2, 8]), "blocks.0.w");
    const h = g.addNode(
      "Mul",
      [x, w],
      [t],
      {},
      { names: ["h"], scope: "blocks.0", loc: { file: "m.tokr", line: 3, col: 5 } },
    );
    const r = g.addNode(
      "Relu",
      [h.outputs[0]],
      [t],
      {},
      { names: ["onnx::Relu_1"], policy: "keep70", loc: { node: "/Relu" } },
    );
    const c = g.addNode("Cast", [r.outputs[0]], [tensorType("f16", [B, N, 4], ["batch", "token", null])], {
      to: "f16",
    });
    const z = g.addNode(
      "Foo",
      [big, null],
      [tensorType("i32", [sub(N, 1)])],
      { axes: [0, -1], eps: 1e-5 },
      { names: ["z"] },
    );
    g.outputs.push(c.outputs[0], z.outputs[0]);
    const expected = `graph @golden(%x: f32[B@batch, N@token, 4]) {
  sym B
  sym N
  sym K <= ceildiv(7*N, 10)
  policy @keep70 {keep = 0.7, kind = "prune"} loc("m.tokr":2:1)
  const %w: f32[4] = dense<[0.5, -1, 0.25, 2]>
  const %big: f32[2, 8] = ref<"blocks.0.w">
  %h = Mul(%x, %w) scope "blocks.0" loc("m.tokr":3:5) : f32[B@batch, N@token, 4]
  %"onnx::Relu_1" = Relu(%h) policy @keep70 loc(node "/Relu") : f32[B@batch, N@token, 4]
  %${c.outputs[0].name} = Cast(%"onnx::Relu_1") {to = "f16"} : f16[B@batch, N@token, 4]
  %z = Foo(%big, none) {axes = [0, -1], eps = 0.00001} : i32[N - 1]
  return %${c.outputs[0].name}, %z
}
`;
    assert.equal(printGraph(g, { elideConstantsOver: 8 }), expected);
    assert.equal(printGraph(parseGraph(expected)), expected);
  });
});

describe("IR round trip property", () => {
  const symNames = ["B", "N", "S"];
  const dimArb: fc.Arbitrary<Dim> = fc.oneof(
    fc.integer({ min: 1, max: 4 }),
    fc.constantFrom(...symNames).map(sym),
    fc.constantFrom(...symNames).map((s) => mul(2, sym(s))),
    fc.constantFrom(...symNames).map((s) => ceildiv(mul(7, sym(s)), 10)),
  );
  const nameArb = fc.option(fc.constantFrom("h", "x.1", "onnx::Mul_12", "a b", "0", "ü", "graph"), {
    nil: undefined,
  });
  const locArb = fc.option(
    fc.record(
      {
        file: fc.string({ maxLength: 6 }),
        line: fc.nat(99),
        col: fc.nat(99),
        node: fc.string({ unit: "binary", maxLength: 6 }),
      },
      { requiredKeys: [] },
    ),
    { nil: undefined },
  );
  const stepArb = fc.record({
    op: fc.constantFrom("Add", "Mul", "Relu", "Neg"),
    other: fc.nat(),
    name: nameArb,
    scope: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
    loc: locArb,
    policy: fc.boolean(),
  });
  const graphArb = fc.record({
    shape: fc.array(dimArb, { minLength: 0, maxLength: 3 }),
    constData: fc.array(fc.float(), { minLength: 64, maxLength: 64 }),
    params: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 5 }),
      fc.oneof(
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.string({ unit: "binary" }),
        fc.array(fc.integer()),
        dimArb,
      ),
    ),
    steps: fc.array(stepArb, { minLength: 1, maxLength: 6 }),
  });

  it("print(parse(print(g))) === print(g) for random elementwise graphs", () => {
    fc.assert(
      fc.property(graphArb, ({ shape, constData, params, steps }) => {
        const g = new Graph("rand");
        for (const s of symNames) g.declareSymbol({ name: s });
        g.policies.set("p", { name: "p", params });
        const t = tensorType("f32", shape);
        // The constant broadcasts: symbolic dims become 1.
        const cShape = shape.map((d) => (typeof d === "number" ? d : 1));
        const n = cShape.reduce((a, b) => a * b, 1);
        const vals: Value[] = [g.addInput(t, "x")];
        vals.push(
          g.addConstant(tensorType("f32", cShape), "c", makeTensor("f32", cShape, constData.slice(0, n))),
        );
        // The chain runs from %x; binary ops take any earlier value (%x, %c or a node output) as second operand.
        let cur = vals[0];
        for (const s of steps) {
          const binary = s.op === "Add" || s.op === "Mul";
          const inputs = binary ? [cur, vals[s.other % vals.length]] : [cur];
          const node = g.addNode(
            s.op,
            inputs,
            [t],
            {},
            {
              names: [s.name],
              ...(s.scope !== undefined ? { scope: s.scope } : {}),
              ...(s.loc !== undefined ? { loc: s.loc } : {}),
              ...(s.policy ? { policy: "p" } : {}),
            },
          );
          cur = node.outputs[0];
          vals.push(cur);
        }
        g.outputs.push(cur);
        assert.deepEqual(verifyGraph(g), []);
        const text = printGraph(g);
        const g2 = parseGraph(text);
        assert.equal(printGraph(g2), text);
        assert.deepEqual(verifyGraph(g2), []);
        const d1 = g.constants.values().next().value!.data!.data;
        const d2 = g2.constants.values().next().value!.data!.data;
        assert.ok(
          Array.from(d1).every((x, i) => Object.is(x, d2[i])),
          "constant data is bit-exact",
        );
      }),
      { numRuns: 150 },
    );
  });
});

describe("IR parse errors", () => {
  it("reports syntax errors at their line:col and keeps going", () => {
    // Columns: line 3 ':' is column 17; line 4 ends at column 23; line 6 ')' is column 20; line 7 '$' is column 26.
    const text = `graph @g(%x: f32[N]) {
  sym N
  %a = Relu(%x  : f32[N]
  %b = Relu(%x) : f32[N
  %c = Relu(%x) : f32[N]
  %d = Add(%c, %c, ) : f32[N]
  %e = Relu(%c) : f32[N] $
  %f = Relu(%a) : f32[N]
  return %f
}`;
    assert.deepEqual(errorsOf(text), [
      "3:17: expected ')' but found ':'",
      "4:24: expected ']' but found '%c'",
      "6:20: expected one of a value name (%x), 'none' but found ')'",
      '7:26: unexpected character "$"',
    ]);
  });

  it("reports semantic errors at the offending token", () => {
    const text = `graph @g(%x: f32[N], %x: f33[N]) {
  sym N
  %y = Relu(%z) : f32[N]
  %y = Relu(%x) : f32[N]
  %w = Add(%x, %x) policy @p : f32[N]
  policy @p {}
  %q = Relu(%x) : f32[N], f32[N]
  %r = Relu(%x) : f32[N@tok]
  %s = Relu(%x) {k = 1, k = 2} : f32[N]
  %t = Relu(%later) : f32[N]
  %later = Relu(%x) : f32[N]
  %u = Relu(%x) policy @nope : f32[N]
  return %u
}`;
    assert.deepEqual(errorsOf(text), [
      "1:22: value %x is already defined at 1:10",
      "3:13: undefined value %z",
      "4:3: value %y is already defined at 3:3",
      "5:28: policy @p is used before its declaration at 6:11",
      "7:17: Relu has 1 output but 2 types after ':'",
      "8:25: unknown axis role 'tok' (expected one of batch, token, channel, head, time)",
      "9:25: attribute 'k' is given twice",
      "10:13: value %later is used before its definition at 11:3",
      "12:25: undefined policy @nope",
    ]);
  });

  it("reports bad types, dims and constants", () => {
    const text = `graph @g(%x: f33[N], %y: f32[2]) {
  sym N
  sym N
  sym min
  const %w: f32[2] = dense<[1, 2, 3]>
  const %v: i32[2] = dense<[1, 2.5]>
  const %u: f32[N] = dense<[1]>
  %k = Foo(%y) : f16[floordiv(N)]
  %k2 = Foo(%y) {a = 0.5*N} : f16[2]
  %k3 = Foo(%y) {b = [1, "x"]} : f16[2]
  return %k3
}`;
    assert.deepEqual(errorsOf(text), [
      "1:14: unknown dtype 'f33' (expected one of f32, f16, f64, i32, i64, i8, u8, bool)",
      "3:7: symbol N is declared twice",
      "4:7: 'min' is reserved for a dim function",
      "5:22: dense<...> holds 3 values but f32[2] needs 2",
      "6:32: i32 data must be integers in [-2147483648, 2147483647], found 2.5",
      "7:22: inline data needs a static shape, got f32[N] (N)",
      "8:22: floordiv takes 2 arguments, got 1",
      "9:22: expected an integer dimension, found 0.5",
      "10:26: a list holds either strings or numbers and dims, not both",
    ]);
  });

  it("does not cascade from a failed statement into its users", () => {
    const text = `graph @g(%x: f32[N]) {
  %a = Relu(%x) : f32[N@bad]
  %b = Relu(%a) : f32[N]
  return %b
}`;
    assert.deepEqual(errorsOf(text), [
      "2:25: unknown axis role 'bad' (expected one of batch, token, channel, head, time)",
    ]);
  });

  it("reports the end of the input and trailing text", () => {
    assert.deepEqual(errorsOf("graph @g(%x: f32[2]) {\n  %a = Relu(%x) : f32[2]\n"), [
      "2:25: expected 'return' but found the end of the input",
    ]);
    assert.deepEqual(errorsOf("graph @g(%x: f32[2]) {\n  return %x\n}\nextra"), [
      "4:1: unexpected 'extra' after the end of the graph",
    ]);
  });
});
