import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import type { Pass } from "./manager.js";
import { constScalar, insertInferred, soleUser, splitConst } from "./match.js";
import { eraseDeadProducers, type Pattern, rewritePatterns } from "./rewrite.js";

const near = (a: number | undefined, b: number): boolean =>
  a !== undefined && Math.abs(a - b) <= 1e-6 * Math.abs(b);

/** The splat constant `n` multiplies by: `c` for `x*c`/`c*x`, `1/c` for `x/c`; with the other operand. */
function scaledBy(g: Graph, n: Node | undefined): { x: Value; k: number } | undefined {
  if (!n || (n.op !== "Mul" && n.op !== "Div")) return undefined;
  const s = splitConst(g, n);
  if (!s || s.c === 0) return undefined;
  if (n.op === "Div") return s.constFirst ? undefined : { x: s.x, k: 1 / s.c };
  return { x: s.x, k: s.c };
}

/** The other operand of a binary `op` node reading `v`. */
function other(n: Node, v: Value): Value | undefined {
  const [a, b] = n.inputs;
  return a === v ? (b ?? undefined) : b === v ? (a ?? undefined) : undefined;
}

/**
 * From `a = 1 + f(x)` to the node computing `0.5 * x * a`, in the exporters' three groupings:
 * `(x*a)*0.5`, `(x*0.5)*a`, `x*(a*0.5)`. Every intermediate must be single-use.
 */
function halfXTimes(g: Graph, a: Value, x: Value): Node | undefined {
  const m1 = soleUser(g, a);
  if (!m1 || m1.op !== "Mul") return undefined;
  const o = other(m1, a);
  if (o === x) {
    const m2 = soleUser(g, m1.outputs[0]);
    const s = scaledBy(g, m2);
    return s && s.x === m1.outputs[0] && near(s.k, 0.5) ? m2 : undefined;
  }
  if (!o) return undefined;
  const s = scaledBy(g, g.producer(o));
  if (!s || !near(s.k, 0.5) || !soleUser(g, o)) return undefined;
  return s.x === x ? m1 : undefined; // (x*0.5)*a
}

/** `x*(a*0.5)`: a's single user scales by 0.5, whose single user multiplies by x. */
function xTimesHalfA(g: Graph, a: Value, x: Value): Node | undefined {
  const h = soleUser(g, a);
  const s = scaledBy(g, h);
  if (!h || !s || s.x !== a || !near(s.k, 0.5)) return undefined;
  const m = soleUser(g, h.outputs[0]);
  return m?.op === "Mul" && other(m, h.outputs[0]) === x ? m : undefined;
}

/** `1 + t` (either order) as t's single user; returns its output. */
function onePlus(g: Graph, t: Value): Value | undefined {
  const n = soleUser(g, t);
  return n?.op === "Add" && other(n, t) !== undefined && constScalar(g, other(n, t)) === 1
    ? n.outputs[0]
    : undefined;
}

function replaceWithGelu(out: Node, x: Value, approximate: "none" | "tanh"): (g: Graph) => void {
  return (g) => {
    const gelu = insertInferred(
      g,
      out,
      "Gelu",
      [x],
      { approximate },
      { ...(out.scope ? { scope: out.scope } : {}) },
    );
    g.replaceAllUses(out.outputs[0], gelu.outputs[0]);
    eraseDeadProducers(g, [out.outputs[0]]);
  };
}

function finish(
  g: Graph,
  t: Value,
  x: Value,
  approximate: "none" | "tanh",
): ((g: Graph) => void) | undefined {
  const a = onePlus(g, t);
  const out = a && (halfXTimes(g, a, x) ?? xTimesHalfA(g, a, x));
  if (!out || out.outputs[0].type.dtype !== x.type.dtype) return undefined;
  return replaceWithGelu(out, x, approximate);
}

/** `0.5 * x * (1 + erf(x / √2))` (or `x * (1/√2)`) → Gelu. */
const erfGelu: Pattern = {
  name: "fuse-gelu-erf",
  op: "Erf",
  match(e, g) {
    const s = scaledBy(g, g.producer(e.inputs[0]!));
    if (!s || !near(s.k, Math.SQRT1_2) || !soleUser(g, e.inputs[0]!)) return undefined;
    return finish(g, e.outputs[0], s.x, "none");
  },
};

/** `0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 * x³)))` with x³ as `Pow(x, 3)` → Gelu(tanh). */
const tanhGelu: Pattern = {
  name: "fuse-gelu-tanh",
  op: "Tanh",
  match(t, g) {
    const s = scaledBy(g, g.producer(t.inputs[0]!));
    if (!s || !near(s.k, Math.sqrt(2 / Math.PI))) return undefined;
    const inner = g.producer(s.x);
    if (inner?.op !== "Add") return undefined;
    for (const [i, j] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const x = inner.inputs[i];
      const c = scaledBy(g, g.producer(inner.inputs[j]!));
      const pow = c && g.producer(c.x);
      if (!x || !c || !near(c.k, 0.044715) || pow?.op !== "Pow") continue;
      if (pow.inputs[0] !== x || constScalar(g, pow.inputs[1]) !== 3) continue;
      return finish(g, t.outputs[0], x, "tanh");
    }
    return undefined;
  },
};

/** Fuses the erf and tanh GELU expansions exporters emit into `Gelu`. */
export const fuseGeluPass: Pass = {
  name: "fuse-gelu",
  description: "x·0.5·(1+erf(x/√2)) and the tanh approximation → Gelu",
  run(g, ctx) {
    return rewritePatterns(g, [erfGelu, tanhGelu], ctx.remarks);
  },
};
