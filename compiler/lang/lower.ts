import { GraphBuilder } from "../builder.js";
import type { AttrValue } from "../ir/attrs.js";
import { isDType } from "../ir/dtype.js";
import type { Graph, Value } from "../ir/graph.js";
import { add, type Dim, DimError, dimEquals, floordiv, mul, neg, printDim, sub, sym } from "../ir/sym.js";
import { makeTensor } from "../ir/tensor.js";
import { isAxisRole, printType, tensorType, type AxisRole, type TensorType } from "../ir/types.js";
import { allOps, getOp, OpError } from "../ops/registry.js";
import type { Arg, BinaryOp, Expr, Item, Pos, Program, Stmt, TypeExpr } from "../../grammar/ast.js";
import { didYouMean, type LangDiagnostic } from "../../grammar/diagnostics.js";
import { blockCycles } from "./cycles.js";
import { INITIALIZERS, OP_ALIASES } from "./ops.js";

/** What an expression evaluates to while lowering; `poison` follows an error already reported. */
type Val =
  | { readonly k: "tensor"; readonly v: Value }
  | { readonly k: "num"; readonly n: number; readonly int: boolean }
  | { readonly k: "dim"; readonly d: Dim }
  | { readonly k: "str"; readonly s: string }
  | { readonly k: "bool"; readonly b: boolean }
  | { readonly k: "list"; readonly items: readonly Val[] }
  | { readonly k: "poison" };

const POISON: Val = { k: "poison" };
type BlockItem = Extract<Item, { k: "block" }>;
type ModelItem = Extract<Item, { k: "model" }>;

/** Raised to abandon the current expression after reporting it. */
class Reported extends Error {}

interface Env {
  readonly vars: Map<string, Val>;
  readonly scope: readonly string[];
  /** Scope names taken in this scope, so two calls to `attn` become `attn` and `attn_1`. */
  readonly taken: Map<string, number>;
  ret?: Val;
}

/** Repeat iterations one program may unroll in all, and elements of one generated parameter. */
const MAX_UNROLL = 4096;
const MAX_SEEDED = 1 << 22;

/** An absent slice end: past any real dimension. */
const MAX_END = Number.MAX_SAFE_INTEGER;

const DIM_OPS: Readonly<Record<BinaryOp, (a: Dim, b: Dim) => Dim>> = {
  "+": add,
  "-": sub,
  "*": mul,
  "/": floordiv,
};

/** Lowers one model of a checked program to IR; every problem becomes a diagnostic. */
export class Lowerer {
  readonly diags: LangDiagnostic[] = [];
  private readonly consts = new Map<string, Val>();
  private readonly blocks = new Map<string, BlockItem>();
  private b!: GraphBuilder;
  private depth = 0;
  /** Blocks being inlined, innermost last: calling one of them again is recursion. */
  private readonly active: string[] = [];
  private cyclesReported = false;
  /** Repeat iterations unrolled so far (bounded by MAX_UNROLL). */
  private unrolled = 0;

  constructor(
    private readonly program: Program,
    private readonly file: string,
  ) {}

  private error(pos: Pos, message: string, hint?: string): never {
    this.diags.push({ pos, message, ...(hint ? { hint } : {}) });
    throw new Reported();
  }

  /** Runs `f`, turning a reported error into poison so that lowering goes on. */
  private guard(f: () => Val): Val {
    try {
      return f();
    } catch (e) {
      if (e instanceof Reported) return POISON;
      throw e;
    }
  }

  lower(modelName?: string): Graph | undefined {
    const models: ModelItem[] = [];
    for (const it of this.program.items) {
      if (it.k === "policy") continue; // policies apply to the lowered graph (policy.ts)
      const taken = this.consts.has(it.name.name) || this.blocks.has(it.name.name);
      if (taken || models.some((m) => m.name.name === it.name.name)) {
        this.guard(() => this.error(it.name.pos, `'${it.name.name}' is already defined`));
        continue;
      }
      if (it.k === "const") {
        const env = this.newEnv([]);
        this.consts.set(
          it.name.name,
          this.guard(() => this.expr(it.value, env)),
        );
      } else if (it.k === "block") this.blocks.set(it.name.name, it);
      else models.push(it);
    }
    const model = modelName ? models.find((m) => m.name.name === modelName) : models[0];
    if (!model) {
      this.diags.push({
        pos: { line: 1, col: 1, len: 1 },
        message: modelName ? `no model '${modelName}'` : "the file defines no model",
      });
      return undefined;
    }
    return this.lowerModel(model);
  }

  private newEnv(scope: readonly string[]): Env {
    return { vars: new Map(), scope, taken: new Map() };
  }

  private lowerModel(m: ModelItem): Graph {
    this.b = new GraphBuilder(m.name.name);
    const env = this.newEnv([]);
    for (const inp of m.inputs) {
      env.vars.set(inp.name.name, POISON); // replaced below unless its type is wrong
      this.guard(() => {
        const t = this.type(inp.type, true);
        const v = this.b.input(inp.name.name, t.dtype, t.dims, t.axes);
        env.vars.set(inp.name.name, { k: "tensor", v });
        return POISON;
      });
    }
    this.stmts(m.body, env);
    const outs: Value[] = [];
    for (const o of m.outputs) {
      this.guard(() => {
        const val = env.vars.get(o.name.name);
        if (!val)
          this.error(
            o.name.pos,
            `output '${o.name.name}' is never assigned`,
            didYouMean(o.name.name, env.vars.keys()),
          );
        if (val.k === "poison") return POISON;
        if (val.k !== "tensor") this.error(o.name.pos, `output '${o.name.name}' is not a tensor`);
        let v = val.v;
        if (o.type) {
          const want = this.type(o.type, true);
          const got = v.type;
          const same =
            want.dtype === got.dtype &&
            want.dims.length === got.dims.length &&
            want.dims.every((d, i) => dimEquals(d, got.dims[i]));
          if (!same)
            this.error(
              o.type.pos,
              `output '${o.name.name}' is ${printType(got)}, declared ${printType(want)}`,
            );
        }
        if (v.name !== o.name.name || outs.includes(v) || this.b.g.inputs.includes(v))
          v = this.b.g.addNode(
            "Identity",
            [v],
            [v.type],
            {},
            { names: [o.name.name], loc: this.loc(o.name.pos) },
          ).outputs[0];
        outs.push(v);
        return POISON;
      });
    }
    return this.b.output(...outs);
  }

  private loc(pos: Pos): { file: string; line: number; col: number } {
    return { file: this.file, line: pos.line, col: pos.col };
  }

  // ---------- types ----------

  /** A tensor type; in model signatures unknown names in dims become symbols. */
  private type(t: TypeExpr, symbols: boolean, env?: Env): TensorType {
    if (!isDType(t.dtype.name))
      this.error(
        t.dtype.pos,
        `unknown element type '${t.dtype.name}'`,
        didYouMean(t.dtype.name, ["f32", "f16", "f64", "i32", "i64", "i8", "u8", "bool"]),
      );
    const dims = t.dims.map((d) => this.dim(d.e, symbols, env));
    const axes = t.dims.map((d): AxisRole | null => {
      if (!d.axis) return null;
      if (!isAxisRole(d.axis.name))
        this.error(
          d.axis.pos,
          `unknown axis role '${d.axis.name}'`,
          didYouMean(d.axis.name, ["batch", "token", "channel", "head", "time"]),
        );
      return d.axis.name;
    });
    return tensorType(t.dtype.name, dims, axes);
  }

  private dim(e: Expr, symbols: boolean, env?: Env): Dim {
    switch (e.k) {
      case "int":
        return e.value;
      case "name": {
        const c = env?.vars.get(e.name) ?? this.consts.get(e.name);
        if (c?.k === "num" && c.int) return c.n;
        if (c) this.error(e.pos, `'${e.name}' is not an integer`);
        if (!symbols)
          this.error(e.pos, `unknown dimension '${e.name}'`, didYouMean(e.name, this.consts.keys()));
        if (!this.b.g.symbols.has(e.name)) this.b.symbol(e.name);
        return sym(e.name);
      }
      case "binary": {
        const [a, b] = [this.dim(e.a, symbols, env), this.dim(e.b, symbols, env)];
        return this.dimMath(e.pos, () => DIM_OPS[e.op](a, b));
      }
      case "neg": {
        const a = this.dim(e.e, symbols, env);
        return this.dimMath(e.pos, () => neg(a));
      }
      default:
        return this.error(e.pos, "a dimension must be an integer, a constant or a symbol");
    }
  }

  // ---------- statements ----------

  private stmts(list: readonly Stmt[], env: Env): void {
    for (const s of list) {
      try {
        this.stmt(s, env);
      } catch (e) {
        if (!(e instanceof Reported)) throw e;
        // What the statement defines is poison, so later uses do not report again.
        if (s.k === "assign") for (const t of s.targets) env.vars.set(t.name, POISON);
        else if (s.k === "param") env.vars.set(s.name.name, POISON);
        else if (s.k === "return") env.ret = POISON;
      }
    }
  }

  private stmt(s: Stmt, env: Env): void {
    switch (s.k) {
      case "assign": {
        const target = s.targets[0];
        const val = this.expr(s.value, env, s.targets.length);
        if (s.targets.length > 1) {
          const items = val.k === "list" ? val.items : s.targets.map(() => POISON);
          s.targets.forEach((t, i) => env.vars.set(t.name, items[i] ?? POISON));
        } else env.vars.set(target.name, val);
        return;
      }
      case "param":
        env.vars.set(s.name.name, this.param(s, env));
        return;
      case "repeat": {
        const n = this.expr(s.count, env);
        if (n.k !== "num" || !n.int || n.n < 0)
          this.error(s.count.pos, "repeat count must be a non-negative integer constant");
        // Unrolling is eager, so a huge (or nested) count would hang the compiler.
        if (this.unrolled + n.n > MAX_UNROLL)
          this.error(s.count.pos, `repeat unrolls more than ${MAX_UNROLL} iterations in all`);
        this.unrolled += n.n;
        for (let i = 0; i < n.n; i++) {
          env.vars.set(s.var.name, { k: "num", n: i, int: true });
          // Same variables, nested scope: `blocks.3`.
          const inner: Env = { vars: env.vars, scope: [...env.scope, "blocks", String(i)], taken: new Map() };
          const before = this.diags.length;
          this.stmts(s.body, inner);
          if (this.diags.length > before) break; // one report per error, not one per iteration
        }
        env.vars.delete(s.var.name);
        return;
      }
      case "return":
        env.ret = this.expr(s.value, env);
        return;
    }
  }

  private param(s: Extract<Stmt, { k: "param" }>, env: Env): Val {
    const t = this.type(s.type, false, env);
    const init = s.init;
    if (
      init.k !== "call" ||
      init.callee.k !== "name" ||
      !(INITIALIZERS as readonly string[]).includes(init.callee.name)
    ) {
      const name = init.k === "call" && init.callee.k === "name" ? init.callee.name : "";
      this.error(
        init.pos,
        `a parameter is initialized by ${INITIALIZERS.map((i) => `${i}(...)`).join(", ")}`,
        name ? didYouMean(name, INITIALIZERS) : undefined,
      );
    }
    const full = [...env.scope, s.name.name].join(".");
    const named = this.namedArgs(init.args, env, { std: "num", seed: "num", key: "str" });
    const dims = t.dims.map((d) =>
      typeof d === "number"
        ? d
        : this.error(s.type.pos, `parameter dims must be constants, got ${printDim(d)}`),
    );
    if (dims.some((d) => !Number.isSafeInteger(d) || d < 0))
      this.error(s.type.pos, `parameter dims must be non-negative safe integers, got [${dims.join(", ")}]`);
    if (init.callee.name !== "file" && count(dims) > MAX_SEEDED)
      this.error(
        s.type.pos,
        `a seeded parameter holds at most ${MAX_SEEDED} elements, this one ${count(dims)}`,
        "load large weights with file(...)",
      );
    switch (init.callee.name) {
      case "file": {
        if (named.key && named.key.k !== "str") this.error(init.pos, "file(key:) must be a string");
        const key = named.key?.k === "str" ? named.key.s : full;
        return { k: "tensor", v: this.b.g.addConstant(t, full, undefined, key) };
      }
      case "zeros":
      case "ones":
        return {
          k: "tensor",
          v: this.b.constant(
            makeTensor(
              t.dtype,
              dims,
              new Array<number>(count(dims)).fill(init.callee.name === "ones" ? 1 : 0),
            ),
            full,
          ),
        };
      default: {
        const std = named.std?.k === "num" ? named.std.n : 1;
        const seed = named.seed?.k === "num" ? named.seed.n : 0;
        return {
          k: "tensor",
          v: this.b.constant(makeTensor(t.dtype, dims, normal(count(dims), std, hash(full) ^ seed)), full),
        };
      }
    }
  }

  private namedArgs(
    args: readonly Arg[],
    env: Env,
    allowed: Record<string, "num" | "str">,
  ): Record<string, Val> {
    const out: Record<string, Val> = {};
    for (const a of args) {
      if (!a.name) this.error(a.value.pos, "initializer arguments are named (std:, seed:, key:)");
      if (!(a.name.name in allowed))
        this.error(
          a.name.pos,
          `unknown argument '${a.name.name}'`,
          didYouMean(a.name.name, Object.keys(allowed)),
        );
      out[a.name.name] = this.expr(a.value, env);
    }
    return out;
  }

  // ---------- expressions ----------

  private tensor(e: Expr, env: Env): Value | undefined {
    return this.asTensor(this.expr(e, env), e.pos);
  }

  /** A value as a tensor: numbers become scalars (of `like`'s dtype), int lists i64 vectors. */
  private asTensor(v: Val, pos: Pos, like?: Value): Value | undefined {
    switch (v.k) {
      case "tensor":
        return v.v;
      case "poison":
        return undefined;
      case "num":
        return this.b.constant(makeTensor(like?.type.dtype ?? (v.int ? "i64" : "f32"), [], [v.n]));
      case "list": {
        const ns = v.items.map((i) =>
          i.k === "num" && i.int
            ? i.n
            : this.error(pos, "a list used as a tensor must hold integer constants"),
        );
        return this.b.const("i64", [ns.length], ns);
      }
      default:
        return this.error(pos, "expected a tensor");
    }
  }

  private expr(e: Expr, env: Env, numOutputs = 1): Val {
    switch (e.k) {
      case "int":
        return { k: "num", n: e.value, int: true };
      case "float":
        return { k: "num", n: e.value, int: false };
      case "string":
        return { k: "str", s: e.value };
      case "bool":
        return { k: "bool", b: e.value };
      case "list":
        return { k: "list", items: e.items.map((i) => this.expr(i, env)) };
      case "name": {
        const v = env.vars.get(e.name) ?? this.consts.get(e.name);
        if (v) return v;
        const known = [...env.vars.keys(), ...this.consts.keys()];
        return this.error(e.pos, `unknown name '${e.name}'`, didYouMean(e.name, known));
      }
      case "neg": {
        const v = this.expr(e.e, env);
        if (v.k === "num") return { ...v, n: -v.n };
        return this.op("Neg", [this.asTensor(v, e.e.pos)], {}, e.pos, env);
      }
      case "binary":
        return this.binary(e, env);
      case "index":
        return this.index(e, env);
      case "call":
        return this.call(e, env, numOutputs);
    }
  }

  private binary(e: Extract<Expr, { k: "binary" }>, env: Env): Val {
    const a = this.expr(e.a, env);
    const b = this.expr(e.b, env);
    if (a.k === "poison" || b.k === "poison") return POISON;
    if (a.k === "num" && b.k === "num") {
      const int = a.int && b.int && (e.op !== "/" || a.n % b.n === 0);
      const n = e.op === "+" ? a.n + b.n : e.op === "-" ? a.n - b.n : e.op === "*" ? a.n * b.n : a.n / b.n;
      return { k: "num", n, int };
    }
    // `+` joins strings (and integers into strings) at compile time, e.g. per-layer weight keys.
    if (e.op === "+" && (a.k === "str" || b.k === "str")) {
      const text = (v: Val, pos: Pos): string =>
        v.k === "str"
          ? v.s
          : v.k === "num" && v.int
            ? String(v.n)
            : this.error(pos, "only strings and integers join with a string");
      return { k: "str", s: text(a, e.a.pos) + text(b, e.b.pos) };
    }
    const like = a.k === "tensor" ? a.v : b.k === "tensor" ? b.v : undefined;
    const op = { "+": "Add", "-": "Sub", "*": "Mul", "/": "Div" }[e.op];
    return this.op(op, [this.asTensor(a, e.a.pos, like), this.asTensor(b, e.b.pos, like)], {}, e.pos, env);
  }

  /** Ranges become one Slice; single indices then Gather (last axis first, so axes stay put). */
  private index(e: Extract<Expr, { k: "index" }>, env: Env): Val {
    let x: Val = this.expr(e.base, env);
    if (x.k === "poison") return x;
    if (x.k !== "tensor") this.error(e.base.pos, "only tensors can be indexed");
    const int = (ex: Expr | undefined, dflt: number): number => {
      if (!ex) return dflt;
      const v = this.expr(ex, env);
      return v.k === "num" && v.int ? v.n : this.error(ex.pos, "an index must be an integer constant");
    };
    const starts: number[] = [],
      ends: number[] = [],
      axes: number[] = [],
      picks: [number, number][] = [];
    e.items.forEach((it, axis) => {
      if (it.k === "at") picks.push([axis, int(it.e, 0)]);
      else if (it.start || it.end) {
        starts.push(int(it.start, 0));
        ends.push(int(it.end, MAX_END));
        axes.push(axis);
      }
    });
    const rank = x.v.type.dims.length;
    if (e.items.length > rank) this.error(e.pos, `${e.items.length} indices for a tensor of rank ${rank}`);
    if (axes.length) {
      const c = (ns: number[]): Value => this.b.const("i64", [ns.length], ns);
      x = this.op("Slice", [x.v, c(starts), c(ends), c(axes)], {}, e.pos, env);
    }
    for (const [axis, i] of picks.reverse()) {
      if (x.k !== "tensor") return x;
      x = this.op("Gather", [x.v, this.b.const("i64", [], [i])], { axis }, e.pos, env);
    }
    return x;
  }

  private call(e: Extract<Expr, { k: "call" }>, env: Env, numOutputs: number): Val {
    if (e.callee.k !== "name") this.error(e.callee.pos, "only ops and blocks can be called");
    const name = e.callee.name;
    const block = this.blocks.get(name);
    if (block) return this.inline(block, e, env, name);
    const op = OP_ALIASES[name] ?? (getOp(name) ? name : undefined);
    if (!op) {
      const cands = [...Object.keys(OP_ALIASES), ...allOps().map((d) => d.name), ...this.blocks.keys()];
      this.error(e.callee.pos, `unknown op or block '${name}'`, didYouMean(name, cands));
    }
    const def = getOp(op)!;
    const inputs: (Value | null)[] = [];
    const attrs: Record<string, AttrValue> = {};
    for (const a of e.args) {
      if (!a.name) {
        const v = this.tensor(a.value, env);
        if (!v) return POISON;
        inputs.push(v);
        continue;
      }
      if (!(a.name.name in def.attrs))
        this.error(
          a.name.pos,
          `${op} has no attribute '${a.name.name}'`,
          didYouMean(a.name.name, Object.keys(def.attrs)),
        );
      attrs[a.name.name] = this.attr(a.value, env);
    }
    return this.op(op, inputs, attrs, e.pos, env, numOutputs);
  }

  private attr(e: Expr, env: Env): AttrValue {
    const v = this.expr(e, env);
    switch (v.k) {
      case "num":
        return v.n;
      case "str":
        return v.s;
      case "bool":
        return v.b;
      case "list":
        return v.items.map((i) => (i.k === "num" ? i.n : this.error(e.pos, "attribute lists hold numbers")));
      default:
        return this.error(e.pos, "an attribute must be a number, string, bool or list of numbers");
    }
  }

  private op(
    op: string,
    inputs: readonly (Value | null | undefined)[],
    attrs: Record<string, AttrValue>,
    pos: Pos,
    env: Env,
    numOutputs = 1,
  ): Val {
    if (inputs.some((i) => i === undefined)) return POISON;
    const scope = env.scope.join(".");
    try {
      const outs = this.b.ops(op, inputs as (Value | null)[], attrs, numOutputs, {
        ...(scope ? { scope } : {}),
        loc: this.loc(pos),
      });
      return numOutputs === 1
        ? { k: "tensor", v: outs[0] }
        : { k: "list", items: outs.map((v) => ({ k: "tensor", v })) };
    } catch (err) {
      if (err instanceof OpError || err instanceof DimError) this.error(pos, err.message);
      throw err;
    }
  }

  /** Dimension arithmetic that can overflow (DimError) reports at the expression. */
  private dimMath(pos: Pos, f: () => Dim): Dim {
    try {
      return f();
    } catch (err) {
      if (err instanceof DimError) this.error(pos, err.message);
      throw err;
    }
  }

  /** Inlines a block under a scope segment named after it (`attn`, then `attn_1` in the same scope). */
  private inline(block: BlockItem, e: Extract<Expr, { k: "call" }>, env: Env, segment: string): Val {
    if (this.active.includes(block.name.name)) {
      // Reported as the static pass words it (cycles.ts) so check.ts merges the two.
      if (!this.cyclesReported) this.diags.push(...blockCycles(this.program));
      this.cyclesReported = true;
      throw new Reported();
    }
    if (++this.depth > 64) this.error(e.pos, `block '${block.name.name}' calls itself too deeply`);
    this.active.push(block.name.name);
    try {
      const n = env.taken.get(segment) ?? 0;
      env.taken.set(segment, n + 1);
      const inner = this.newEnv([...env.scope, n ? `${segment}_${n}` : segment]);
      const byName = new Map(block.params.map((p) => [p.name.name, p]));
      let positional = 0;
      for (const a of e.args) {
        const p = a.name ? byName.get(a.name.name) : block.params[positional++];
        if (!p) {
          if (a.name)
            this.error(
              a.name.pos,
              `block '${block.name.name}' has no parameter '${a.name.name}'`,
              didYouMean(a.name.name, byName.keys()),
            );
          this.error(a.value.pos, `block '${block.name.name}' takes ${block.params.length} argument(s)`);
        }
        if (inner.vars.has(p.name.name)) this.error(a.value.pos, `parameter '${p.name.name}' given twice`);
        inner.vars.set(p.name.name, this.blockArg(p, a.value, env));
      }
      const missing = block.params.filter((p) => !inner.vars.has(p.name.name)).map((p) => p.name.name);
      if (missing.length)
        this.error(e.pos, `missing argument(s) to block '${block.name.name}': ${missing.join(", ")}`);
      this.stmts(block.body, inner);
      if (!inner.ret) this.error(block.end, `block '${block.name.name}' does not return a value`);
      return inner.ret;
    } finally {
      this.active.pop();
      this.depth--;
    }
  }

  private blockArg(p: BlockItem["params"][number], e: Expr, env: Env): Val {
    const v = this.expr(e, env);
    const kind = p.kind?.name ?? "tensor";
    if (v.k === "poison") return v;
    const ok =
      kind === "tensor"
        ? v.k === "tensor"
        : kind === "int"
          ? v.k === "num" && v.int
          : kind === "float"
            ? v.k === "num"
            : false;
    if (!["tensor", "int", "float"].includes(kind))
      this.error(
        p.kind!.pos,
        `unknown parameter kind '${kind}' (int, float or tensor)`,
        didYouMean(kind, ["int", "float", "tensor"]),
      );
    if (!ok)
      this.error(
        e.pos,
        `parameter '${p.name.name}' expects ${kind === "int" ? "an int" : kind === "float" ? "a float" : "a tensor"}`,
      );
    return v;
  }
}

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** FNV-1a, so that a parameter's values depend only on its stable name and seed. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** N(0, std^2) samples from mulberry32 + Box-Muller. */
function normal(n: number, std: number, seed: number): number[] {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: number[] = [];
  while (out.length < n) {
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out.push(std * r * Math.cos(2 * Math.PI * v), std * r * Math.sin(2 * Math.PI * v));
  }
  return out.slice(0, n);
}
