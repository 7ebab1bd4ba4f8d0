import { type DimEnv, evalDim } from "../ir/sym.js";
import { roundF16 } from "../ir/tensor.js";
import { erf } from "../ops/elementwise.js";
import { roundBf16 } from "./bf16.js";
import { MAX_GROUPS_PER_AXIS } from "./builder.js";
import { KirError } from "./expr.js";
import {
  type BinOp,
  type Expr,
  isFloatKType,
  type KType,
  type Kernel,
  type Stmt,
  type SubgroupOp,
  type UnOp,
} from "./types.js";

/**
 * The KIR interpreter: runs a kernel on the CPU with the semantics every renderer must keep, so
 * lowerings are checked against the reference without a GPU. Kernels are compiled once to JS
 * closures. Invocations of a workgroup run one after another between barriers (as generators
 * when the kernel has barriers or subgroup ops); a barrier that not every live invocation
 * reaches at the same site is an error, as is any out-of-bounds access (GPUs would clamp or
 * corrupt silently). Workgroup arrays start as NaN (floats) or a poison integer, so a read
 * before the write shows up in results.
 */

export type KArray = Float32Array | Int32Array | Uint32Array;

export interface RunOptions {
  /** Invocation order within a workgroup between barriers; running both orders exposes missing barriers. */
  readonly order?: "forward" | "reverse";
  /** Lanes per subgroup (default 8, lavapipe's). */
  readonly subgroupSize?: number;
}

/** Per-invocation state. */
interface Inv {
  regs: number[];
  lid: [number, number, number];
  gid: [number, number, number];
  flat: number;
  /** Private arrays of this invocation. */
  priv: Map<string, KArray>;
}

interface Wg {
  group: [number, number, number];
  numGroups: [number, number, number];
  shared: Map<string, KArray>;
  subgroupSize: number;
}

type Ev = (inv: Inv) => number;

/** Control signals from statement execution. */
const NORMAL = 0;
const BREAK = 1;
const RETURN = 2;
type Signal = typeof NORMAL | typeof BREAK | typeof RETURN;

/** What a suspended invocation waits for. */
type Wait =
  | { readonly k: "barrier"; readonly site: number }
  | {
      readonly k: "subgroup";
      readonly site: number;
      readonly op: SubgroupOp;
      readonly value: number;
      readonly arg: number;
    };

function wrap(t: KType): (x: number) => number {
  switch (t) {
    case "f32":
      return Math.fround;
    case "f16":
      return roundF16;
    case "bf16":
      return roundBf16;
    case "i32":
      return (x) => x | 0;
    case "u32":
      return (x) => x >>> 0;
    case "bool":
      return (x) => (x ? 1 : 0);
  }
}

const isFloatT = isFloatKType;

function unaryFn(op: UnOp): (x: number) => number {
  switch (op) {
    case "neg":
      return (x) => -x;
    case "abs":
      return Math.abs;
    case "exp":
      return Math.exp;
    case "log":
      return Math.log;
    case "sqrt":
      return Math.sqrt;
    case "rsqrt":
      return (x) => 1 / Math.sqrt(x);
    case "tanh":
      return Math.tanh;
    case "erf":
      return erf;
    case "floor":
      return Math.floor;
    case "ceil":
      return Math.ceil;
    case "not":
      return (x) => (x ? 0 : 1);
  }
}

function binaryFn(op: BinOp, t: KType): (a: number, b: number) => number {
  const float = isFloatT(t);
  switch (op) {
    case "add":
      return (a, b) => a + b;
    case "sub":
      return (a, b) => a - b;
    case "mul":
      return float
        ? (a, b) => a * b
        : t === "u32"
          ? (a, b) => Math.imul(a, b) >>> 0
          : (a, b) => Math.imul(a, b);
    case "div":
      return float
        ? (a, b) => a / b
        : (a, b) => {
            if (b === 0) throw new KirError("integer division by zero");
            return Math.trunc(a / b);
          };
    case "mod":
      return float
        ? (a, b) => a % b
        : (a, b) => {
            if (b === 0) throw new KirError("integer modulo by zero");
            return a % b;
          };
    case "min":
      return (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));
    case "max":
      return (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
    case "pow":
      return Math.pow;
    case "lt":
      return (a, b) => (a < b ? 1 : 0);
    case "le":
      return (a, b) => (a <= b ? 1 : 0);
    case "gt":
      return (a, b) => (a > b ? 1 : 0);
    case "ge":
      return (a, b) => (a >= b ? 1 : 0);
    case "eq":
      return (a, b) => (a === b ? 1 : 0);
    case "ne":
      return (a, b) => (a !== b ? 1 : 0);
    case "and":
      return (a, b) => (a && b ? 1 : 0);
    case "or":
      return (a, b) => (a || b ? 1 : 0);
  }
}

function castFn(from: KType, to: KType): (x: number) => number {
  if (to === "bool") return (x) => (x !== 0 ? 1 : 0);
  if (isFloatT(to)) return wrap(to);
  // float -> int truncates toward zero and saturates (WGSL semantics; CUDA's conversions saturate too).
  if (isFloatT(from)) {
    const [lo, hi] = to === "i32" ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
    return (x) => (Number.isNaN(x) ? 0 : Math.min(hi, Math.max(lo, Math.trunc(x))));
  }
  return wrap(to);
}

/** Compiles a kernel once; `run` executes it over a grid. */
export class CompiledKernel {
  private readonly slots = new Map<string, number>();
  private readonly arrays = new Map<
    string,
    { t: KType; scope: "param" | "workgroup" | "private"; size?: number }
  >();
  private readonly hasSync: boolean;
  private nextSite = 0;
  private readonly body: (inv: Inv) => Signal;
  private readonly bodyGen: (inv: Inv) => Generator<Wait, Signal, number>;
  // Set per run.
  private bufs = new Map<string, KArray>();
  private env: DimEnv = {};
  private wg: Wg = { group: [0, 0, 0], numGroups: [1, 1, 1], shared: new Map(), subgroupSize: 8 };

  constructor(readonly kernel: Kernel) {
    for (const p of kernel.params) this.arrays.set(p.name, { t: p.t, scope: "param" });
    for (const a of kernel.arrays) this.arrays.set(a.name, { t: a.t, scope: a.scope, size: a.size });
    this.hasSync = usesSync(kernel.body);
    this.body = this.block(kernel.body);
    this.nextSite = 0;
    this.bodyGen = this.blockGen(kernel.body);
  }

  private fail(msg: string): never {
    throw new KirError(`kernel ${this.kernel.name}: ${msg}`);
  }

  private slot(name: string): number {
    let s = this.slots.get(name);
    if (s === undefined) {
      s = this.slots.size;
      this.slots.set(name, s);
    }
    return s;
  }

  private arrayOf(name: string, inv: Inv): KArray {
    const a = this.arrays.get(name);
    if (!a) return this.fail(`unknown array '${name}'`);
    const arr =
      a.scope === "param"
        ? this.bufs.get(name)
        : a.scope === "workgroup"
          ? this.wg.shared.get(name)
          : inv.priv.get(name);
    if (!arr) return this.fail(`array '${name}' is not bound`);
    return arr;
  }

  private expr(e: Expr): Ev {
    switch (e.k) {
      case "const": {
        const v = wrap(e.t)(e.v);
        return () => v;
      }
      case "sym": {
        const name = e.name;
        return () => lookupSym(this.env, name, this.kernel.name) | 0;
      }
      case "var": {
        const s = this.slot(e.name);
        return (inv) => {
          const v = inv.regs[s];
          if (v === undefined) this.fail(`variable '${e.name}' read before it is set`);
          return v;
        };
      }
      case "builtin": {
        const ax = e.axis;
        switch (e.name) {
          case "global_id":
            return (inv) => inv.gid[ax];
          case "local_id":
            return (inv) => inv.lid[ax];
          case "group_id":
            return () => this.wg.group[ax];
          case "num_groups":
            return () => this.wg.numGroups[ax];
          case "subgroup_size":
            return () => this.wg.subgroupSize;
          case "subgroup_lane":
            return (inv) => inv.flat % this.wg.subgroupSize;
        }
        break;
      }
      case "unary": {
        const a = this.expr(e.a);
        const f = unaryFn(e.op);
        const w = wrap(e.t);
        return (inv) => w(f(a(inv)));
      }
      case "binary": {
        const a = this.expr(e.a);
        const b = this.expr(e.b);
        const f = binaryFn(e.op, e.a.t);
        const w = wrap(e.t);
        return (inv) => w(f(a(inv), b(inv)));
      }
      case "select": {
        const c = this.expr(e.cond);
        const a = this.expr(e.a);
        const b = this.expr(e.b);
        return (inv) => {
          const av = a(inv);
          const bv = b(inv);
          return c(inv) ? av : bv;
        };
      }
      case "cast": {
        const a = this.expr(e.a);
        const f = castFn(e.a.t, e.t);
        return (inv) => f(a(inv));
      }
      case "load": {
        const idx = this.expr(e.index);
        const name = e.array;
        const boolish = e.t === "bool";
        return (inv) => {
          const arr = this.arrayOf(name, inv);
          const i = idx(inv);
          if (!(i >= 0 && i < arr.length))
            this.fail(`read of '${name}'[${i}] out of bounds (length ${arr.length})`);
          return boolish ? (arr[i] ? 1 : 0) : arr[i];
        };
      }
      case "subgroup":
        return this.fail("a subgroup op may only initialize a declaration (KernelBuilder emits that form)");
    }
  }

  private block(ss: readonly Stmt[]): (inv: Inv) => Signal {
    const fs = ss.map((s) => this.stmt(s));
    return (inv) => {
      for (const f of fs) {
        const r = f(inv);
        if (r !== NORMAL) return r;
      }
      return NORMAL;
    };
  }

  private stmt(s: Stmt): (inv: Inv) => Signal {
    switch (s.k) {
      case "decl":
      case "assign": {
        const slot = this.slot(s.name);
        const e = s.k === "decl" ? s.init : s.value;
        if (e.k === "subgroup") return () => this.fail("subgroup op outside a workgroup-synchronous run");
        const f = this.expr(e);
        return (inv) => {
          inv.regs[slot] = f(inv);
          return NORMAL;
        };
      }
      case "store": {
        const idx = this.expr(s.index);
        const val = this.expr(s.value);
        const name = s.array;
        const t = this.arrays.get(name)?.t ?? this.fail(`unknown array '${name}'`);
        const w = wrap(t);
        return (inv) => {
          const arr = this.arrayOf(name, inv);
          const i = idx(inv);
          if (!(i >= 0 && i < arr.length))
            this.fail(`write of '${name}'[${i}] out of bounds (length ${arr.length})`);
          arr[i] = w(val(inv));
          return NORMAL;
        };
      }
      case "if": {
        const c = this.expr(s.cond);
        const t = this.block(s.then);
        const e = this.block(s.else);
        return (inv) => (c(inv) ? t(inv) : e(inv));
      }
      case "for": {
        const slot = this.slot(s.v);
        const from = this.expr(s.from);
        const to = this.expr(s.to);
        const body = this.block(s.body);
        const step = s.step;
        return (inv) => {
          const end = to(inv);
          for (let i = from(inv); i < end; i += step) {
            inv.regs[slot] = i;
            const r = body(inv);
            if (r === BREAK) break;
            if (r === RETURN) return RETURN;
          }
          return NORMAL;
        };
      }
      case "barrier":
        return () => this.fail("barrier outside a workgroup-synchronous run");
      case "break":
        return () => BREAK;
      case "return":
        return () => RETURN;
    }
  }

  // Generator versions for kernels with barriers/subgroup ops: suspend at each sync point.
  private blockGen(ss: readonly Stmt[]): (inv: Inv) => Generator<Wait, Signal, number> {
    const fs = ss.map((s) => this.stmtGen(s));
    return function* (inv) {
      for (const f of fs) {
        const r = yield* f(inv);
        if (r !== NORMAL) return r;
      }
      return NORMAL;
    };
  }

  private stmtGen(s: Stmt): (inv: Inv) => Generator<Wait, Signal, number> {
    switch (s.k) {
      case "barrier": {
        const site = this.nextSite++;
        return function* () {
          yield { k: "barrier", site };
          return NORMAL;
        };
      }
      case "decl":
      case "assign": {
        const e = s.k === "decl" ? s.init : s.value;
        if (e.k !== "subgroup") return lift(this.stmt(s));
        const site = this.nextSite++;
        const slot = this.slot(s.name);
        const a = this.expr(e.a);
        const arg = e.arg ? this.expr(e.arg) : () => 0;
        const op = e.op;
        const w = wrap(e.t);
        return function* (inv) {
          const r = yield { k: "subgroup", site, op, value: a(inv), arg: arg(inv) };
          inv.regs[slot] = w(r);
          return NORMAL;
        };
      }
      case "if": {
        const c = this.expr(s.cond);
        const t = this.blockGen(s.then);
        const e = this.blockGen(s.else);
        return function* (inv) {
          return c(inv) ? yield* t(inv) : yield* e(inv);
        };
      }
      case "for": {
        const slot = this.slot(s.v);
        const from = this.expr(s.from);
        const to = this.expr(s.to);
        const body = this.blockGen(s.body);
        const step = s.step;
        return function* (inv) {
          const end = to(inv);
          for (let i = from(inv); i < end; i += step) {
            inv.regs[slot] = i;
            const r = yield* body(inv);
            if (r === BREAK) break;
            if (r === RETURN) return RETURN;
          }
          return NORMAL;
        };
      }
      case "store":
      case "break":
      case "return":
        return lift(this.stmt(s));
    }
  }

  /** Runs the kernel over its grid with `arrays` bound by parameter name. */
  run(arrays: Readonly<Record<string, KArray>>, env: DimEnv, opts: RunOptions = {}): void {
    const k = this.kernel;
    this.bufs = new Map();
    for (const p of k.params) {
      const a = arrays[p.name];
      if (!a) this.fail(`no array bound to parameter '${p.name}'`);
      const want = p.t === "i32" ? Int32Array : p.t === "u32" ? Uint32Array : Float32Array;
      if (!(a instanceof want)) this.fail(`parameter '${p.name}' (${p.t}) bound to a ${a.constructor.name}`);
      this.bufs.set(p.name, a);
    }
    this.env = env;
    const grid = k.grid.map((d) => evalDim(d, env)) as [number, number, number];
    for (const g of grid) {
      if (g < 0 || g > MAX_GROUPS_PER_AXIS) this.fail(`grid axis of ${g} workgroups is out of range`);
    }
    if (grid.some((g) => g === 0)) return;
    const [wx, wy, wz] = k.workgroupSize;
    const sg = opts.subgroupSize ?? 8;
    for (let gz = 0; gz < grid[2]; gz++)
      for (let gy = 0; gy < grid[1]; gy++)
        for (let gx = 0; gx < grid[0]; gx++) {
          const shared = new Map<string, KArray>();
          for (const a of k.arrays) if (a.scope === "workgroup") shared.set(a.name, poisoned(a.t, a.size));
          this.wg = { group: [gx, gy, gz], numGroups: grid, shared, subgroupSize: sg };
          const invs: Inv[] = [];
          for (let z = 0; z < wz; z++)
            for (let y = 0; y < wy; y++)
              for (let x = 0; x < wx; x++) {
                const priv = new Map<string, KArray>();
                for (const a of k.arrays) if (a.scope === "private") priv.set(a.name, poisoned(a.t, a.size));
                invs.push({
                  regs: [],
                  lid: [x, y, z],
                  gid: [gx * wx + x, gy * wy + y, gz * wz + z],
                  flat: x + wx * (y + wy * z),
                  priv,
                });
              }
          if (opts.order === "reverse") invs.reverse();
          if (this.hasSync) this.runSynced(invs, sg);
          else for (const inv of invs) this.body(inv);
        }
  }

  private runSynced(invs: Inv[], sg: number): void {
    const gens = invs.map((inv) => this.bodyGen(inv));
    const waits: (Wait | null)[] = invs.map(() => null);
    const done = invs.map(() => false);
    const resume: number[] = invs.map(() => 0);
    for (;;) {
      for (let i = 0; i < gens.length; i++) {
        if (done[i]) continue;
        const r = gens[i].next(resume[i]);
        if (r.done) {
          done[i] = true;
          waits[i] = null;
        } else waits[i] = r.value;
      }
      const live = invs.map((_, i) => i).filter((i) => !done[i]);
      if (live.length === 0) return;
      const first = waits[live[0]] as Wait;
      if (first.k === "barrier") {
        if (live.length !== invs.length) this.fail("barrier not reached by every invocation (some returned)");
        for (const i of live) {
          const w = waits[i] as Wait;
          if (w.k !== "barrier" || w.site !== first.site)
            this.fail("divergent barrier: invocations wait at different sites");
        }
        continue;
      }
      // Subgroup collectives: lanes are grouped by flat local index.
      const groups = new Map<number, number[]>();
      for (const i of live) {
        const w = waits[i] as Wait;
        if (w.k !== "subgroup")
          this.fail("an invocation waits at a barrier while others wait in a subgroup op");
        const g = Math.floor(invs[i].flat / sg);
        const list = groups.get(g) ?? [];
        list.push(i);
        groups.set(g, list);
      }
      for (const members of groups.values()) {
        const ws = members.map((i) => waits[i] as Extract<Wait, { k: "subgroup" }>);
        if (ws.some((w) => w.site !== ws[0].site || w.op !== ws[0].op))
          this.fail("divergent subgroup op: lanes of one subgroup are at different sites");
        const byLane = new Map<number, number>();
        members.forEach((i, j) => byLane.set(invs[i].flat % sg, ws[j].value));
        members.forEach((i, j) => {
          resume[i] = subgroupResult(ws[j], invs[i].flat % sg, byLane, (m) => this.fail(m));
        });
      }
    }
  }
}

function subgroupResult(
  w: Extract<Wait, { k: "subgroup" }>,
  lane: number,
  byLane: Map<number, number>,
  fail: (m: string) => never,
): number {
  const vals = [...byLane.values()];
  switch (w.op) {
    case "add":
      return vals.reduce((a, b) => a + b, 0);
    case "max":
      return vals.reduce((a, b) => Math.max(a, b), -Infinity);
    case "min":
      return vals.reduce((a, b) => Math.min(a, b), Infinity);
    case "shuffle_xor": {
      const src = lane ^ w.arg;
      const v = byLane.get(src);
      if (v === undefined) return fail(`shuffle_xor reads lane ${src}, which is not active`);
      return v;
    }
  }
}

function lookupSym(env: DimEnv, name: string, kernel: string): number {
  const v = env instanceof Map ? env.get(name) : (env as Readonly<Record<string, number>>)[name];
  if (v === undefined) throw new KirError(`kernel ${kernel}: symbol '${name}' is not bound`);
  return v;
}

function lift(f: (inv: Inv) => Signal): (inv: Inv) => Generator<Wait, Signal, number> {
  // eslint-disable-next-line require-yield
  return function* (inv) {
    return f(inv);
  };
}

function usesSync(ss: readonly Stmt[]): boolean {
  return ss.some((s) => {
    switch (s.k) {
      case "barrier":
        return true;
      case "decl":
        return s.init.k === "subgroup";
      case "assign":
        return s.value.k === "subgroup";
      case "if":
        return usesSync(s.then) || usesSync(s.else);
      case "for":
        return usesSync(s.body);
      case "store":
      case "break":
      case "return":
        return false;
    }
  });
}

/** A fresh array whose contents show up when read before written. */
function poisoned(t: KType, n: number): KArray {
  if (isFloatT(t)) return new Float32Array(n).fill(NaN);
  if (t === "u32" || t === "bool") return new Uint32Array(n).fill(0xdeadbeef);
  return new Int32Array(n).fill(-0x21524111);
}

const CACHE = new WeakMap<Kernel, CompiledKernel>();

/** Runs one kernel on CPU arrays bound by parameter name; symbols from `env`. */
export function runKernel(
  kernel: Kernel,
  arrays: Readonly<Record<string, KArray>>,
  env: DimEnv = {},
  opts?: RunOptions,
): void {
  let c = CACHE.get(kernel);
  if (!c) {
    c = new CompiledKernel(kernel);
    CACHE.set(kernel, c);
  }
  c.run(arrays, env, opts);
}
