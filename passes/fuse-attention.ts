import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { dimEquals, mul } from "../compiler/ir/sym.js";
import { isFloat } from "../compiler/ir/dtype.js";
import type { Pass } from "./manager.js";
import { constScalar, i64Const, insertInferred, permOf, producerOp, sameInts, soleUser } from "./match.js";
import { eraseDeadProducers, type Pattern, rewritePatterns } from "./rewrite.js";

/** Scores `MatMul(a, bT)` times `scale`, plus an optional additive `bias`, as found under a Softmax. */
interface Core {
  a: Value;
  bT: Value;
  scale: number;
  bias: Value | null;
}

/** Peels `x * c`, `c * x`, `x / c` by splat constants off `v` (each step single-use), accumulating the factor. */
function peelScale(g: Graph, v: Value): { v: Value; scale: number } {
  let scale = 1;
  for (;;) {
    const p = g.producer(v);
    if (!p || (p.op !== "Mul" && p.op !== "Div") || !soleUser(g, v)) return { v, scale };
    const [x, y] = p.inputs;
    const cy = constScalar(g, y);
    const cx = p.op === "Mul" ? constScalar(g, x) : undefined;
    if (cy !== undefined && x && cy !== 0) {
      scale *= p.op === "Mul" ? cy : 1 / cy;
      v = x;
    } else if (cx !== undefined && y) {
      scale *= cx;
      v = y;
    } else return { v, scale };
  }
}

/** Walks back from the Softmax input over `+ bias` and scalar scaling to the QK^T MatMul. */
function findCore(g: Graph, s: Value): Core | undefined {
  let bias: Value | null = null;
  const add = producerOp(g, s, "Add");
  if (add && soleUser(g, s)) {
    for (const [i, j] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const x = add.inputs[i];
      const b = add.inputs[j];
      if (!x || !b || !isFloat(b.type.dtype)) continue;
      if (producerOp(g, peelScale(g, x).v, "MatMul")) {
        bias = b;
        s = x;
        break;
      }
    }
    if (!bias) return undefined;
  }
  const peeled = peelScale(g, s);
  const mm = producerOp(g, peeled.v, "MatMul");
  if (!mm || !soleUser(g, peeled.v)) return undefined;
  const [a0, bT] = mm.inputs;
  if (!a0 || !bT) return undefined;
  const qs = soleUser(g, a0) ? peelScale(g, a0) : { v: a0, scale: 1 };
  return { a: qs.v, bT, scale: peeled.scale * qs.scale, bias };
}

/**
 * Heads merged into the leading dim by the nn.MultiheadAttention export: `x` is
 * `Transpose(Reshape([N, B, H*D] → [N, B*H, D]), [1, 0, 2])`. Returns H, or 1 if not recognisable
 * (attention over [B*H, 1, N, D] is still exact, only the head axis is lost).
 */
function mergedHeads(g: Graph, x: Value): number {
  const t = producerOp(g, x, "Transpose");
  const r =
    t && (sameInts(permOf(t), [1, 0, 2]) || sameInts(permOf(t), [1, 2, 0]))
      ? producerOp(g, t.inputs[0], "Reshape")
      : undefined;
  const from = r?.inputs[0]?.type.dims;
  const to = r?.outputs[0].type.dims;
  if (!from || !to || from.length !== 3 || to.length !== 3) return 1;
  const [c, d] = [from[2], to[2]];
  if (typeof c !== "number" || typeof d !== "number" || d === 0 || c % d !== 0) return 1;
  const h = c / d;
  return dimEquals(from[0], to[0]) && dimEquals(to[1], mul(from[1], h)) ? h : 1;
}

/** `MatMul(Softmax(scale * MatMul(q, kᵀ) [+ bias]), v)` → attention, for rank-4 [B,H,N,D] and rank-3 [B*H,N,D] operands. */
const attentionPattern: Pattern = {
  name: "fuse-attention",
  op: "Softmax",
  match(sm, g) {
    const p = sm.outputs[0];
    const r = p.type.dims.length;
    const axis = typeof sm.attrs.axis === "number" ? sm.attrs.axis : -1;
    if ((r !== 3 && r !== 4) || (axis !== -1 && axis !== r - 1)) return undefined;
    const mm2 = soleUser(g, p);
    if (!mm2 || mm2.op !== "MatMul" || mm2.inputs[0] !== p || !mm2.inputs[1]) return undefined;
    const v = mm2.inputs[1];
    const core = findCore(g, sm.inputs[0]!);
    if (!core) return undefined;
    const { a: q, bT } = core;
    if (![q, bT, v].every((x) => x.type.dims.length === r && isFloat(x.type.dtype))) return undefined;
    const [Nq, D] = q.type.dims.slice(r - 2);
    const [D2, Nk] = bT.type.dims.slice(r - 2);
    const [Nk2, Dv] = v.type.dims.slice(r - 2);
    const lead = (x: Value): Value["type"]["dims"] => x.type.dims.slice(0, r - 2);
    const sameLead = [bT, v].every((x) => lead(x).every((d, i) => dimEquals(d, lead(q)[i])));
    if (!sameLead || !dimEquals(D, D2) || !dimEquals(Nk, Nk2)) return undefined;
    if (r === 3 && ![Nq, D, Nk, Dv].every((d) => typeof d === "number")) return undefined;
    if (core.bias && r === 3 && core.bias.type.dims.length > 2) return undefined;
    return (g: Graph) => fuse(g, mm2, core, v, r);
  },
};

function fuse(g: Graph, mm2: Node, core: Core, v: Value, r: number): void {
  const { a: q, bT } = core;
  const at = (op: string, ins: (Value | null)[], attrs = {}): Value =>
    insertInferred(g, mm2, op, ins, attrs).outputs[0];
  let q4 = q;
  let k4: Value;
  let v4 = v;
  const kt = producerOp(g, bT, "Transpose");
  if (r === 4) {
    k4 =
      kt && sameInts(permOf(kt), [0, 1, 3, 2])
        ? kt.inputs[0]!
        : at("Transpose", [bT], { perm: [0, 1, 3, 2] });
  } else {
    const h = mergedHeads(g, q);
    const split = (x: Value): Value => {
      const [n, d] = x.type.dims.slice(1) as number[];
      return at("Reshape", [x, i64Const(g, [-1, h, n, d], "heads_shape")]);
    };
    q4 = split(q);
    k4 = split(at("Transpose", [bT], { perm: [0, 2, 1] }));
    v4 = split(v);
  }
  const out4 = at("attention", [q4, k4, v4, null, core.bias], { scale: core.scale });
  const out = mm2.outputs[0];
  const res =
    r === 4
      ? out4
      : at("Reshape", [out4, i64Const(g, [-1, ...(out.type.dims.slice(1) as number[])], "merge_shape")]);
  g.replaceAllUses(out, res);
  const sm = g.producer(mm2.inputs[0]!)!;
  g.erase(mm2);
  g.erase(sm);
  eraseDeadProducers(g, [...sm.inputs, v]);
}

/** Fuses the exported scaled-dot-product attention core (and its head split/merge) into `attention`. */
export const fuseAttentionPass: Pass = {
  name: "fuse-attention",
  description: "MatMul(Softmax(scale·QKᵀ [+ bias]), V) with head split/merge → attention",
  run(g, ctx) {
    return rewritePatterns(g, [attentionPattern], ctx.remarks);
  },
};
