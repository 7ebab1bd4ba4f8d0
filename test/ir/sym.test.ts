import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  type Dim,
  add,
  ceildiv,
  compareLE,
  dimEquals,
  DimError,
  evalDim,
  floordiv,
  freeSymbols,
  max,
  min,
  mod,
  mul,
  neg,
  parseDim,
  printDim,
  sub,
  substitute,
  sym,
} from "../../compiler/ir/sym.js";

const N = sym("N");
const L = sym("L");
const r = sym("r");

test("canonical forms print as expected", () => {
  assert.equal(printDim(ceildiv(mul(7, N), 10)), "ceildiv(7*N, 10)");
  assert.equal(printDim(sub(N, mul(r, L))), "N - L*r");
  assert.equal(printDim(add(N, N, 3)), "2*N + 3");
  assert.equal(printDim(sub(N, N)), "0");
  assert.equal(sub(N, N), 0);
  assert.equal(printDim(min(N, 128)), "min(128, N)");
  assert.equal(printDim(neg(add(N, 1))), "-N - 1");
  assert.equal(printDim(mul(add(N, 1), add(N, 1))), "2*N + N*N + 1");
});

test("like terms and constants collect regardless of order", () => {
  assert.ok(dimEquals(add(N, mul(2, L), 5), add(5, L, N, L)));
  assert.ok(dimEquals(mul(L, r), mul(r, L)));
  assert.ok(!dimEquals(add(N, 1), N));
});

test("division simplifies exact parts out", () => {
  assert.equal(printDim(floordiv(mul(4, N), 2)), "2*N");
  assert.equal(printDim(floordiv(add(mul(4, N), 3), 2)), "2*N + 1");
  assert.equal(printDim(ceildiv(add(mul(4, N), 3), 2)), "2*N + 2");
  assert.equal(printDim(floordiv(floordiv(N, 2), 3)), "floordiv(N, 6)");
  assert.equal(printDim(ceildiv(ceildiv(N, 2), 3)), "ceildiv(N, 6)");
  // floor((2N+1)/4) = floor(N/2): the remainder is below the common factor.
  assert.equal(printDim(floordiv(add(mul(2, N), 1), 4)), "floordiv(N, 2)");
  assert.equal(floordiv(N, N), 1);
  assert.equal(floordiv(7, 2), 3);
  assert.equal(ceildiv(7, 2), 4);
  assert.throws(() => floordiv(N, 0), DimError);
});

test("mod is written as a - b*floordiv(a, b)", () => {
  assert.equal(printDim(mod(N, 4)), "N - 4*floordiv(N, 4)");
  assert.equal(mod(mul(4, N), 4), 0);
  assert.equal(evalDim(mod(N, 4), { N: 11 }), 3);
});

test("min and max drop provably dominated arguments", () => {
  assert.ok(dimEquals(min(N, add(N, 1)), N));
  assert.ok(dimEquals(max(N, add(N, 1)), add(N, 1)));
  assert.ok(dimEquals(max(N, 0), N)); // symbols are non-negative
  assert.equal(min(3, 5, 4), 3);
  assert.ok(dimEquals(min(min(N, L), 5), min(N, L, 5)));
  assert.ok(dimEquals(min(N, N), N));
  assert.equal(printDim(max(N, L)), "max(L, N)");
});

test("compareLE proves what it can and says unknown otherwise", () => {
  assert.equal(compareLE(ceildiv(mul(7, N), 10), add(N, 1)), undefined); // needs reasoning about division
  assert.equal(compareLE(N, add(N, 2)), true);
  assert.equal(compareLE(add(N, 3), N), false);
  assert.equal(compareLE(N, L), undefined);
});

test("evaluation, substitution and free symbols", () => {
  const d = sub(ceildiv(mul(7, N), 10), mul(r, L));
  assert.equal(evalDim(d, { N: 197, r: 8, L: 2 }), 138 - 16);
  assert.deepEqual([...freeSymbols(d)].sort(), ["L", "N", "r"]);
  const s = substitute(d, new Map<string, Dim>([["N", 100]]));
  assert.equal(printDim(s), "-L*r + 70");
  assert.throws(() => evalDim(N, {}), /symbol 'N' is not bound/);
});

test("parseDim reads printed forms and reports bad input", () => {
  assert.ok(dimEquals(parseDim("ceildiv(7*N, 10)"), ceildiv(mul(7, N), 10)));
  assert.ok(dimEquals(parseDim("N - r*L"), sub(N, mul(r, L))));
  assert.ok(dimEquals(parseDim("-(N + 1)*2"), mul(-2, add(N, 1))));
  assert.throws(() => parseDim("N +"), DimError);
  assert.throws(() => parseDim("foo(N)"), /unknown dimension function 'foo'/);
  assert.throws(() => parseDim("N $ 2"), DimError);
  assert.throws(() => parseDim("min"), DimError);
});

// ---- property tests: simplification never changes the value ----

type Tree =
  | { k: "n"; v: number }
  | { k: "s"; name: string }
  | { k: "add" | "sub" | "mul"; a: Tree; b: Tree }
  | { k: "floordiv" | "ceildiv"; a: Tree; b: number }
  | { k: "min" | "max"; a: Tree; b: Tree };

const names = ["B", "N", "L", "r"];
const treeArb: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
  t: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.integer({ min: -20, max: 40 }).map((v) => ({ k: "n" as const, v })),
    fc.constantFrom(...names).map((name) => ({ k: "s" as const, name })),
    fc.record({
      k: fc.constantFrom("add" as const, "sub" as const, "mul" as const),
      a: tie("t"),
      b: tie("t"),
    }),
    fc.record({
      k: fc.constantFrom("floordiv" as const, "ceildiv" as const),
      a: tie("t"),
      b: fc.integer({ min: 1, max: 12 }),
    }),
    fc.record({ k: fc.constantFrom("min" as const, "max" as const), a: tie("t"), b: tie("t") }),
  ),
})).t;

function build(t: Tree): Dim {
  switch (t.k) {
    case "n":
      return t.v;
    case "s":
      return sym(t.name);
    case "add":
      return add(build(t.a), build(t.b));
    case "sub":
      return sub(build(t.a), build(t.b));
    case "mul":
      return mul(build(t.a), build(t.b));
    case "floordiv":
      return floordiv(build(t.a), t.b);
    case "ceildiv":
      return ceildiv(build(t.a), t.b);
    case "min":
      return min(build(t.a), build(t.b));
    case "max":
      return max(build(t.a), build(t.b));
  }
}

function direct(t: Tree, env: Record<string, number>): number {
  switch (t.k) {
    case "n":
      return t.v;
    case "s":
      return env[t.name];
    case "add":
      return direct(t.a, env) + direct(t.b, env);
    case "sub":
      return direct(t.a, env) - direct(t.b, env);
    case "mul":
      return direct(t.a, env) * direct(t.b, env);
    case "floordiv":
      return Math.floor(direct(t.a, env) / t.b);
    case "ceildiv":
      return Math.ceil(direct(t.a, env) / t.b);
    case "min":
      return Math.min(direct(t.a, env), direct(t.b, env));
    case "max":
      return Math.max(direct(t.a, env), direct(t.b, env));
  }
}

const envArb = fc.record({
  B: fc.integer({ min: 0, max: 64 }),
  N: fc.integer({ min: 0, max: 300 }),
  L: fc.integer({ min: 0, max: 12 }),
  r: fc.integer({ min: 0, max: 16 }),
});

test("property: the canonical form evaluates like the expression it came from", () => {
  fc.assert(
    fc.property(treeArb, envArb, (t, env) => {
      assert.equal(evalDim(build(t), env), direct(t, env) + 0); // + 0 turns -0 into 0
    }),
    { numRuns: 2000 },
  );
});

test("property: print/parse round-trips and canonicalisation is idempotent", () => {
  fc.assert(
    fc.property(treeArb, (t) => {
      const d = build(t);
      const p = parseDim(printDim(d));
      assert.equal(printDim(p), printDim(d));
      assert.ok(dimEquals(p, d));
    }),
    { numRuns: 1000 },
  );
});

test("property: compareLE is never wrong when it answers", () => {
  fc.assert(
    fc.property(treeArb, treeArb, envArb, (a, b, env) => {
      const ans = compareLE(build(a), build(b));
      if (ans !== undefined) assert.equal(ans, direct(a, env) <= direct(b, env));
    }),
    { numRuns: 1000 },
  );
});
