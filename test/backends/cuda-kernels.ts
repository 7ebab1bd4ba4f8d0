import { KernelBuilder, elementwiseKernel } from "../../compiler/kir/builder.js";
import * as E from "../../compiler/kir/expr.js";
import { floordiv, sym } from "../../compiler/ir/sym.js";
import type { Kernel } from "../../compiler/kir/types.js";

/** Hand-written kernels exercising barriers, workgroup memory, warp ops, f16 and symbols. */

/** Sums 64 values per workgroup with a shared-memory tree; `dropBarrier` omits the first barrier. */
export function treeSum(name: string, dropBarrier = false): Kernel {
  const kb = new KernelBuilder(name, [64, 1, 1]);
  const x = kb.buffer("x", "f32", "read");
  const y = kb.buffer("y", "f32", "read_write");
  const sh = kb.array("sh", "f32", 64, "workgroup");
  const lid = kb.let("lid", E.builtin("local_id", 0));
  const g = kb.let("g", E.builtin("group_id", 0));
  kb.store(sh, lid, kb.load(x, E.add(E.mul(g, 64), lid)));
  if (!dropBarrier) kb.barrier();
  for (let s = 32; s >= 1; s /= 2) {
    kb.if(E.lt(lid, s), () => kb.store(sh, lid, E.add(kb.load(sh, lid), kb.load(sh, E.add(lid, s)))));
    kb.barrier();
  }
  kb.if(E.eq(lid, 0), () => kb.store(y, g, kb.load(sh, E.i32(0))));
  kb.setGrid([4, 1, 1]);
  return kb.build();
}

/** Per-warp sum and max of 64 values per block (2 warps), plus a lane-swapped copy. */
export function warpReduce(name: string): Kernel {
  const kb = new KernelBuilder(name, [64, 1, 1]);
  kb.use("subgroups");
  const x = kb.buffer("x", "f32", "read");
  const sum = kb.buffer("sum", "f32", "read_write");
  const mx = kb.buffer("mx", "f32", "read_write");
  const sw = kb.buffer("swapped", "f32", "read_write");
  const lane = kb.buffer("lane", "i32", "read_write");
  const i = kb.let("i", E.builtin("global_id", 0));
  const v = kb.let("v", kb.load(x, i));
  const s = kb.let("s", E.subgroup("add", v));
  const m = kb.let("m", E.subgroup("max", v));
  const t = kb.let("t", E.subgroup("shuffle_xor", v, E.i32(5)));
  kb.store(sum, i, s);
  kb.store(mx, i, m);
  kb.store(sw, i, t);
  kb.store(lane, i, E.add(E.mul(E.builtin("subgroup_size"), 1000), E.builtin("subgroup_lane")));
  kb.setGrid([2, 1, 1]);
  return kb.build();
}

/** Transposes a W x H matrix (multiples of 8) through an 8x8 shared tile; `dropBarrier` omits the barrier. */
export function transpose(name: string, dropBarrier = false): Kernel {
  const kb = new KernelBuilder(name, [8, 8, 1]);
  const inp = kb.buffer("inp", "f32", "read");
  const out = kb.buffer("out", "f32", "read_write");
  const tile = kb.array("tile", "f32", 64, "workgroup");
  const W = { k: "sym", t: "i32", name: "W" } as const;
  const H = { k: "sym", t: "i32", name: "H" } as const;
  const lx = kb.let("lx", E.builtin("local_id", 0));
  const ly = kb.let("ly", E.builtin("local_id", 1));
  const gx = kb.let("gx", E.builtin("group_id", 0));
  const gy = kb.let("gy", E.builtin("group_id", 1));
  // tile[ly][lx] = in[gy*8+ly][gx*8+lx]
  kb.store(
    tile,
    E.add(E.mul(ly, 8), lx),
    kb.load(inp, E.add(E.mul(E.add(E.mul(gy, 8), ly), W), E.add(E.mul(gx, 8), lx))),
  );
  if (!dropBarrier) kb.barrier();
  // out[gx*8+ly][gy*8+lx] = tile[lx][ly]
  kb.store(
    out,
    E.add(E.mul(E.add(E.mul(gx, 8), ly), H), E.add(E.mul(gy, 8), lx)),
    kb.load(tile, E.add(E.mul(lx, 8), ly)),
  );
  kb.setGrid([floordiv(sym("W"), 8), floordiv(sym("H"), 8), 1]);
  return kb.build();
}

/** f16 storage: y = f16(tanh(a) * b + 0.1), with a private array round trip and a float -> int cast. */
export function halfOps(name: string): Kernel {
  return elementwiseKernel(name, sym("N"), 32, (kb) => {
    kb.use("f16");
    const a = kb.buffer("a", "f16", "read");
    const b = kb.buffer("b", "f16", "read");
    const y = kb.buffer("y", "f16", "read_write");
    const n = kb.buffer("n", "i32", "read_write");
    const p = kb.array("p", "f16", 2, "private");
    return (i) => {
      kb.store(p, E.i32(1), E.unary("tanh", kb.load(a, i)));
      const r = kb.let("r", E.add(E.mul(kb.load(p, E.i32(1)), kb.load(b, i)), E.lit(0.1, "f16")));
      kb.store(y, i, r);
      kb.store(n, i, E.cast(E.mul(E.cast(r, "f32"), 100), "i32"));
    };
  });
}

/** Every primitive once, elementwise over N f32 values (comparison against the interpreter). */
export function allPrims(name: string): Kernel {
  return elementwiseKernel(name, sym("N"), 64, (kb) => {
    const x = kb.buffer("x", "f32", "read");
    const y = kb.buffer("y", "f32", "read_write");
    const k = kb.buffer("k", "i32", "read_write");
    return (i) => {
      const v = kb.let("v", kb.load(x, i));
      const pos = kb.let("pos", E.add(E.unary("abs", v), 0.5));
      const un = (["neg", "abs", "exp", "tanh", "erf", "floor", "ceil"] as const).map((op) => E.unary(op, v));
      const un2 = (["log", "sqrt", "rsqrt"] as const).map((op) => E.unary(op, pos));
      const bin = (["add", "sub", "mul", "div", "mod", "min", "max"] as const).map((op) =>
        E.binary(op, v, 0.75),
      );
      const acc = kb.var("acc", E.f32(0));
      [...un, ...un2, ...bin, E.binary("pow", pos, E.f32(1.5))].forEach((e, j) =>
        kb.set(acc, E.add(acc, E.mul(e, E.f32(j + 1)))),
      );
      const c = kb.let("c", E.and(E.or(E.lt(v, 0), E.ge(v, 0.5)), E.unary("not", E.eq(v, 0.25))));
      kb.store(y, i, E.select(c, acc, E.sub(0, acc)));
      const iv = kb.let("iv", E.cast(E.mul(v, 37), "i32"));
      const q = kb.let(
        "q",
        E.add(E.add(E.binary("div", iv, 3), E.binary("mod", iv, 5)), E.max(iv, E.min(iv, 2))),
      );
      const cnt = kb.var("cnt", E.i32(0));
      kb.for(
        "j",
        0,
        10,
        (j) => {
          kb.if(E.gt(j, E.unary("abs", iv)), () => kb.break());
          kb.set(cnt, E.add(cnt, j));
        },
        2,
      );
      kb.store(k, i, E.add(E.add(q, cnt), E.cast(E.ne(E.cast(v, "bool"), E.FALSE), "i32")));
    };
  });
}

/** A barrier only some threads reach (threads >= 32 return first): a misuse the emulator reports. */
export function earlyExit(name: string): Kernel {
  const kb = new KernelBuilder(name, [64, 1, 1]);
  const y = kb.buffer("y", "f32", "read_write");
  const lid = kb.let("lid", E.builtin("local_id", 0));
  kb.if(E.ge(lid, 32), () => kb.return());
  kb.barrier();
  kb.store(y, lid, E.f32(1));
  kb.setGrid([1, 1, 1]);
  return kb.build();
}

/** Barriers at two different sites in the two arms of a branch. */
export function divergent(name: string): Kernel {
  const kb = new KernelBuilder(name, [64, 1, 1]);
  const y = kb.buffer("y", "f32", "read_write");
  const lid = kb.let("lid", E.builtin("local_id", 0));
  kb.if(
    E.lt(lid, 16),
    () => kb.barrier(),
    () => kb.barrier(),
  );
  kb.store(y, lid, E.f32(1));
  kb.setGrid([1, 1, 1]);
  return kb.build();
}

/** Writes one element past the end of `y` from the last thread (grid covers N+1 items). */
export function outOfBounds(name: string): Kernel {
  const kb = new KernelBuilder(name, [32, 1, 1]);
  const y = kb.buffer("y", "f32", "read_write");
  const i = kb.let("i", E.builtin("global_id", 0));
  kb.if(E.le(i, { k: "sym", t: "i32", name: "N" }), () => kb.store(y, i, E.f32(2)));
  kb.setGrid([1, 1, 1]);
  return kb.build();
}
