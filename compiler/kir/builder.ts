import { type Dim, ceildiv, min as dimMin } from "../ir/sym.js";
import { KirError, add, builtin, dimExpr, exprSymbols, i32, load, lt, mul, varRef } from "./expr.js";
import type { BufferParam, Expr, Feature, KType, Kernel, LocalArray, Stmt } from "./types.js";

/** WebGPU/CUDA limit on workgroups per grid axis that lowerings keep to. */
export const MAX_GROUPS_PER_AXIS = 65535;

/**
 * Builds one kernel: declarations, then the body through structured helpers
 * (`let`, `store`, `if`, `for`). Names are made unique, so helpers may be nested freely.
 */
export class KernelBuilder {
  private readonly params: BufferParam[] = [];
  private readonly arrays: LocalArray[] = [];
  private readonly features = new Set<Feature>();
  private readonly stack: Stmt[][] = [[]];
  private readonly used = new Set<string>();
  private grid: readonly [Dim, Dim, Dim] = [1, 1, 1];

  constructor(
    readonly name: string,
    readonly workgroupSize: readonly [number, number, number],
  ) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new KirError(`invalid kernel name '${name}'`);
  }

  private fresh(hint: string): string {
    const base = hint.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([0-9])/, "_$1") || "v";
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}${i}`;
    this.used.add(n);
    return n;
  }

  /** Declares a storage buffer parameter (binding order = call order); returns its name. */
  buffer(hint: string, t: BufferParam["t"], access: BufferParam["access"]): string {
    const name = this.fresh(hint);
    this.params.push({ name, t, access });
    return name;
  }

  array(hint: string, t: KType, size: number, scope: LocalArray["scope"]): string {
    if (!Number.isInteger(size) || size <= 0)
      throw new KirError(`array '${hint}' needs a positive static size`);
    const name = this.fresh(hint);
    this.arrays.push({ name, t, size, scope });
    return name;
  }

  use(f: Feature): void {
    this.features.add(f);
  }

  setGrid(grid: readonly [Dim, Dim, Dim]): void {
    this.grid = grid;
  }

  private emit(s: Stmt): void {
    this.stack[this.stack.length - 1].push(s);
  }

  private block(f: () => void): Stmt[] {
    this.stack.push([]);
    f();
    return this.stack.pop() as Stmt[];
  }

  /** An immutable register. */
  let(hint: string, init: Expr): Expr {
    const name = this.fresh(hint);
    this.emit({ k: "decl", name, t: init.t, init, mut: false });
    return varRef(name, init.t);
  }

  /** A mutable register; assign with `set`. */
  var(hint: string, init: Expr): Expr {
    const name = this.fresh(hint);
    this.emit({ k: "decl", name, t: init.t, init, mut: true });
    return varRef(name, init.t);
  }

  set(v: Expr, value: Expr): void {
    if (v.k !== "var") throw new KirError("set needs a variable made by var()");
    if (v.t !== value.t) throw new KirError(`assigning ${value.t} to ${v.name}: ${v.t}`);
    this.emit({ k: "assign", name: v.name, value });
  }

  load(array: string, index: Expr): Expr {
    return load(array, index, this.typeOf(array));
  }

  store(array: string, index: Expr, value: Expr): void {
    const t = this.typeOf(array);
    if (value.t !== t) throw new KirError(`storing ${value.t} into '${array}' of ${t}`);
    if (index.t !== "i32") throw new KirError(`index into '${array}' must be i32`);
    const p = this.params.find((x) => x.name === array);
    if (p && p.access === "read") throw new KirError(`'${array}' is read-only`);
    this.emit({ k: "store", array, index, value });
  }

  private typeOf(array: string): KType {
    const p = this.params.find((x) => x.name === array) ?? this.arrays.find((x) => x.name === array);
    if (!p) throw new KirError(`unknown array '${array}'`);
    return p.t;
  }

  if(cond: Expr, then: () => void, otherwise?: () => void): void {
    if (cond.t !== "bool") throw new KirError(`if condition must be bool, got ${cond.t}`);
    this.emit({ k: "if", cond, then: this.block(then), else: otherwise ? this.block(otherwise) : [] });
  }

  /** `for (i = from; i < to; i += step)`; the body gets the loop variable. */
  for(hint: string, from: Expr | number, to: Expr | number, body: (i: Expr) => void, step = 1): void {
    if (!Number.isInteger(step) || step <= 0) throw new KirError(`loop step must be a positive integer`);
    const v = this.fresh(hint);
    const f = typeof from === "number" ? i32(from) : from;
    const t = typeof to === "number" ? i32(to) : to;
    if (f.t !== "i32" || t.t !== "i32") throw new KirError("loop bounds must be i32");
    this.emit({ k: "for", v, from: f, to: t, step, body: this.block(() => body(varRef(v, "i32"))) });
  }

  barrier(): void {
    this.emit({ k: "barrier" });
  }

  break(): void {
    this.emit({ k: "break" });
  }

  return(): void {
    this.emit({ k: "return" });
  }

  build(): Kernel {
    if (this.stack.length !== 1) throw new KirError("unbalanced blocks");
    return {
      name: this.name,
      workgroupSize: this.workgroupSize,
      grid: this.grid,
      params: [...this.params],
      arrays: [...this.arrays],
      body: this.stack[0],
      features: [...this.features].sort(),
    };
  }
}

// ---------- common launch shapes ----------

/**
 * A 1-D launch over `total` items with `wg` invocations per workgroup, folded into a 2-D grid
 * when it would exceed the per-axis limit. Returns the grid and the flat item index expression.
 */
export function flatGrid(total: Dim, wg: number): { grid: [Dim, Dim, Dim]; index: Expr } {
  const groups = ceildiv(total, wg);
  const gx =
    typeof groups === "number" && groups <= MAX_GROUPS_PER_AXIS
      ? groups
      : dimMin(groups, MAX_GROUPS_PER_AXIS);
  const gy = gx === groups ? 1 : ceildiv(groups, MAX_GROUPS_PER_AXIS);
  const group = add(builtin("group_id", 0), mul(builtin("group_id", 1), builtin("num_groups", 0)));
  const index = add(mul(group, wg), builtin("local_id", 0));
  return { grid: [gx, gy, 1], index };
}

/** Runs `body(i)` for each flat index below `total` (one invocation per item, 1-D workgroups). */
export function elementwiseKernel(
  name: string,
  total: Dim,
  wg: number,
  setup: (kb: KernelBuilder) => (i: Expr) => void,
): Kernel {
  const kb = new KernelBuilder(name, [wg, 1, 1]);
  const body = setup(kb);
  const { grid, index } = flatGrid(total, wg);
  kb.setGrid(grid);
  const i = kb.let("i", index);
  kb.if(lt(i, dimExpr(total)), () => body(i));
  return kb.build();
}

// ---------- index math over tensors ----------

/** Row-major strides of dims (symbolic allowed). */
export function stridesOf(dims: readonly Dim[]): Expr[] {
  const out: Expr[] = new Array<Expr>(dims.length);
  let s: Expr = i32(1);
  for (let i = dims.length - 1; i >= 0; i--) {
    out[i] = s;
    s = mul(s, dimExpr(dims[i]));
  }
  return out;
}

/** Multi-index of a flat row-major index (the last axis varies fastest). */
export function unravel(kb: KernelBuilder, flat: Expr, dims: readonly Dim[], hint = "c"): Expr[] {
  const out: Expr[] = new Array<Expr>(dims.length);
  let rest = flat;
  for (let a = dims.length - 1; a >= 0; a--) {
    // A zero-sized axis means no invocation runs; index by 1 so no `% 0` reaches a compiler.
    const d = dims[a] === 0 ? i32(1) : dimExpr(dims[a]);
    if (a === 0) out[a] = rest;
    else {
      out[a] = kb.let(`${hint}${a}`, binaryMod(rest, d));
      rest = kb.let(`${hint}r${a}`, binaryDiv(rest, d));
    }
  }
  return out;
}

/**
 * Flat offset of `idx` into a tensor of shape `dims` broadcast to the index rank (numpy rules,
 * aligned right: axes of size 1 read index 0, missing leading axes are ignored).
 */
export function broadcastOffset(idx: readonly Expr[], dims: readonly Dim[]): Expr {
  const off = idx.length - dims.length;
  if (off < 0) throw new KirError(`index of rank ${idx.length} into a tensor of rank ${dims.length}`);
  const strides = stridesOf(dims);
  let acc: Expr = i32(0);
  dims.forEach((d, a) => {
    if (d === 1) return;
    acc =
      acc.k === "const" && acc.v === 0
        ? mul(idx[off + a], strides[a])
        : add(acc, mul(idx[off + a], strides[a]));
  });
  return acc;
}

function binaryDiv(a: Expr, b: Expr): Expr {
  return b.k === "const" && b.v === 1 ? a : { k: "binary", t: "i32", op: "div", a, b };
}
function binaryMod(a: Expr, b: Expr): Expr {
  return b.k === "const" && b.v === 1 ? i32(0) : { k: "binary", t: "i32", op: "mod", a, b };
}

/** Symbols a kernel reads (its grid's and its body's): the uniforms a backend must provide. */
export function kernelSymbols(k: Kernel): string[] {
  const out = new Set<string>();
  const walk = (ss: readonly Stmt[]): void => {
    for (const s of ss) {
      switch (s.k) {
        case "decl":
          exprSymbols(s.init, out);
          break;
        case "assign":
          exprSymbols(s.value, out);
          break;
        case "store":
          exprSymbols(s.index, out);
          exprSymbols(s.value, out);
          break;
        case "if":
          exprSymbols(s.cond, out);
          walk(s.then);
          walk(s.else);
          break;
        case "for":
          exprSymbols(s.from, out);
          exprSymbols(s.to, out);
          walk(s.body);
          break;
        case "barrier":
        case "break":
        case "return":
          break;
      }
    }
  };
  walk(k.body);
  return [...out].sort();
}
