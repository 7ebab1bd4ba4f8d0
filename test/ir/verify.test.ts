import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Graph } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import { IRParseError, parseAndVerify, parseGraph } from "../../compiler/ir/text/parser.js";
import { verifyGraph } from "../../compiler/verify.js";

/** Verifier messages of a graph written as IR text. */
function problems(text: string): string[] {
  return verifyGraph(parseGraph(text)).map((d) => d.message);
}

/** A graph around one node statement, over `%x: f32[N]` and `%m: bool[N]`. */
function withNode(stmt: string): string {
  return `graph @g(%x: f32[N], %m: bool[N]) {
  sym N
  ${stmt}
  return %y
}`;
}

const f32N = tensorType("f32", [sym("N")]);

describe("verifier rejects", () => {
  it("an unknown op", () => {
    assert.deepEqual(problems(withNode("%y = Frobnicate(%x) : f32[N]")), [
      "Frobnicate: unknown op 'Frobnicate'",
    ]);
  });

  it("the wrong number of inputs or outputs", () => {
    assert.deepEqual(problems(withNode("%y = Add(%x) : f32[N]")), [
      "Add: Add needs at least 2 inputs, got 1",
    ]);
    assert.deepEqual(problems(withNode("%y = Relu(%x, %x) : f32[N]")), [
      "Relu: Relu takes at most 1 inputs, got 2",
    ]);
    assert.deepEqual(problems(withNode("%y, %z = Relu(%x) : f32[N], f32[N]")), [
      "Relu: Relu has at most 1 outputs, got 2",
    ]);
    assert.deepEqual(problems(withNode("%y = Add(%x, none) : f32[N]")), [
      "Add: required input 'b' is absent",
    ]);
  });

  it("an unknown attribute", () => {
    assert.deepEqual(problems(withNode("%y = Gelu(%x) {alpha = 0.5} : f32[N]")), [
      "Gelu: unknown attribute 'alpha' (expected one of: approximate)",
    ]);
    assert.deepEqual(problems(withNode("%y = Relu(%x) {alpha = 0.5} : f32[N]")), [
      "Relu: unknown attribute 'alpha'",
    ]);
  });

  it("an attribute of the wrong kind or value", () => {
    assert.deepEqual(problems(withNode("%y = Cast(%x) {to = 3} : f32[N]")), [
      "Cast: attribute 'to' must be dtype, got 3",
    ]);
    assert.deepEqual(problems(withNode('%y = Cast(%x) {to = "f31"} : f32[N]')), [
      "Cast: attribute 'to' must be dtype, got \"f31\"",
    ]);
    assert.deepEqual(problems(withNode("%y = Gelu(%x) {approximate = true} : f32[N]")), [
      "Gelu: attribute 'approximate' must be string, got true",
    ]);
    assert.deepEqual(problems(withNode('%y = Gelu(%x) {approximate = "fast"} : f32[N]')), [
      'Gelu: attribute \'approximate\' must be one of "none", "tanh", got "fast"',
    ]);
  });

  it("a missing required attribute", () => {
    assert.deepEqual(problems(withNode("%y = Cast(%x) : f16[N]")), ["Cast: missing attribute 'to'"]);
  });

  it("a use before the definition (nodes out of topological order)", () => {
    const g = parseGraph(`graph @g(%x: f32[N]) {
  sym N
  %a = Neg(%x) : f32[N]
  %y = Relu(%a) : f32[N]
  return %y
}`);
    g.setNodeOrder([g.nodes[1], g.nodes[0]]);
    assert.deepEqual(
      verifyGraph(g).map((d) => [d.message, d.value]),
      [["Relu: input 0 (%a) is used before it is defined", "y"]],
    );
  });

  it("a value from another graph", () => {
    const other = new Graph("other");
    const stranger = other.addInput(f32N, "stranger");
    const g = new Graph("g");
    g.declareSymbol({ name: "N" });
    const x = g.addInput(f32N, "x");
    const y = g.addNode("Add", [x, stranger], [f32N], {}, { names: ["y"] }).outputs[0];
    g.outputs.push(y);
    assert.deepEqual(
      verifyGraph(g).map((d) => d.message),
      ["Add: input 1 (%stranger) is not defined in this graph"],
    );
  });

  it("a declared type that differs from the inferred one", () => {
    assert.deepEqual(problems(withNode("%y = Add(%x, %x) : f32[N, 1]")), [
      "Add: output %y is declared f32[N, 1] but the op gives f32[N]",
    ]);
    assert.deepEqual(problems(withNode("%y = Relu(%x) : f16[N]")), [
      "Relu: output %y is declared f16[N] but the op gives f32[N]",
    ]);
    assert.deepEqual(problems(withNode("%y = Where(%m, %x, %x) : f32[2*N]")), [
      "Where: output %y is declared f32[2*N] but the op gives f32[N]",
    ]);
    // An op failing to infer at all is reported too: Where needs a bool condition.
    assert.deepEqual(problems(withNode("%y = Where(%x, %x, %x) : f32[N]")), [
      "Where: condition must be bool, got f32",
    ]);
  });

  it("an undeclared symbol", () => {
    const g = parseGraph(`graph @g(%x: f32[N]) {
  %y = Relu(%x) : f32[N]
  return %y
}`);
    assert.deepEqual(
      verifyGraph(g).map((d) => [d.message, d.value]),
      [
        ["symbol 'N' in f32[N] is not declared", "x"],
        ["symbol 'N' in f32[N] is not declared", "y"],
      ],
    );
  });

  it("an undeclared policy", () => {
    const g = new Graph("g");
    g.declareSymbol({ name: "N" });
    const x = g.addInput(f32N, "x");
    g.outputs.push(g.addNode("Relu", [x], [f32N], {}, { names: ["y"], policy: "keep70" }).outputs[0]);
    assert.deepEqual(
      verifyGraph(g).map((d) => d.message),
      ["Relu: policy @keep70 is not declared"],
    );
  });

  it("constants whose data disagree with their type", () => {
    const g = new Graph("g");
    const x = g.addInput(tensorType("f32", [2]), "x");
    const a = g.addConstant(tensorType("f32", [2]), "a", makeTensor("f32", [3], [1, 2, 3]));
    const b = g.addConstant(tensorType("f32", [2]), "b", makeTensor("i32", [2], [1, 2]));
    const c = g.addConstant(tensorType("f32", [2]), "c");
    let v = x;
    for (const k of [a, b, c]) v = g.addNode("Add", [v, k], [tensorType("f32", [2])]).outputs[0];
    g.outputs.push(v);
    assert.deepEqual(
      verifyGraph(g).map((d) => d.message),
      [
        "constant %a has shape [3] but is typed f32[2]",
        "constant %b holds i32 data but is typed f32[2]",
        "constant %c has neither data nor a reference",
      ],
    );
  });

  it("a graph without outputs", () => {
    assert.deepEqual(problems("graph @empty(%x: f32[2]) {\n  return\n}"), ["graph @empty has no outputs"]);
  });

  it("reports every problem of a graph in one run", () => {
    assert.deepEqual(
      problems(`graph @g(%x: f32[N]) {
  sym N
  %a = Frobnicate(%x) : f32[N]
  %b = Cast(%x) : f16[N]
  %y = Add(%x, %x) : f32[N, 1]
  return %y
}`),
      [
        "Frobnicate: unknown op 'Frobnicate'",
        "Cast: missing attribute 'to'",
        "Add: output %y is declared f32[N, 1] but the op gives f32[N]",
      ],
    );
  });
});

describe("verifier accepts", () => {
  it("a well-formed graph with symbols, constants, a policy and every elementwise dtype rule", () => {
    const text = `graph @ok(%x: f32[B@batch, N@token, 4], %m: bool[B, N, 1]) {
  sym B
  sym N
  sym K <= N
  policy @p {keep = 0.5}
  const %w: f32[4] = dense<[1, 2, 3, 4]>
  const %big: f32[4] = ref<"w.big">
  %h = Add(%x, %w) scope "blocks.0" : f32[B@batch, N@token, 4]
  %r = Relu(%h) policy @p loc("a.tokr":3:1) : f32[B@batch, N@token, 4]
  %s = Mul(%r, %big) : f32[B@batch, N@token, 4]
  %n = Neg(%s) : f32[B@batch, N@token, 4]
  %c = Cast(%n) {to = "f16"} : f16[B@batch, N@token, 4]
  %e = Equal(%x, %n) : bool[B@batch, N@token, 4]
  %y = Where(%m, %x, %n) : f32[B@batch, N@token, 4]
  return %y, %c, %e
}`;
    assert.deepEqual(verifyGraph(parseGraph(text)), []);
    assert.equal(parseAndVerify(text).outputs.length, 3);
  });
});

describe("parseAndVerify", () => {
  function located(text: string): string[] {
    try {
      parseAndVerify(text, "v.ir");
    } catch (e) {
      assert.ok(e instanceof IRParseError);
      return e.message.split("\n");
    }
    return assert.fail("expected verifier errors");
  }

  it("reports verifier problems at the IR-text position of the node, or at its own source loc", () => {
    assert.deepEqual(
      located(`graph @g(%x: f32[N], %z: f32[M]) {
  sym N
  %a = Frobnicate(%x) : f32[N]
  %b = Relu(%x) loc("model.tokr":40:7) : f16[N]
  %c = Relu(%x) loc(node "/Relu_2") : f16[N]
  return %b, %c
}`),
      [
        "v.ir:1:22: error: symbol 'M' in f32[M] is not declared",
        "v.ir:3:3: error: Frobnicate: unknown op 'Frobnicate'",
        "model.tokr:40:7: error: Relu: output %b is declared f16[N] but the op gives f32[N]",
        "v.ir:5:3: error: node '/Relu_2': Relu: output %c is declared f16[N] but the op gives f32[N]",
      ],
    );
  });

  it("puts graph-level problems at the graph keyword", () => {
    assert.deepEqual(located("// no outputs\ngraph @empty() {\n  return\n}"), [
      "v.ir:2:1: error: graph @empty has no outputs",
    ]);
  });

  it("reports parse errors without verifying", () => {
    assert.deepEqual(located("graph @g(%x: f32[N]) {\n  %y = Frobnicate(%q) : f32[N]\n  return %y\n}"), [
      "v.ir:2:19: error: undefined value %q",
    ]);
  });
});
