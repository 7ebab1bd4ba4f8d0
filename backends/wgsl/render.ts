import { kernelSymbols } from "../../compiler/kir/builder.js";
import type {
  BinOp,
  Builtin,
  Expr,
  KType,
  Kernel,
  Stmt,
  SubgroupOp,
  Target,
  UnOp,
} from "../../compiler/kir/types.js";
import { roundF16 } from "../../compiler/ir/tensor.js";
import { someInBody } from "../kir-walk.js";
import { HELPERS, type Helper } from "./helpers.js";

/**
 * KIR kernel -> WGSL compute shader. Primitives render through the tables below; only KIR
 * primitives are switched on, never IR op names. Bindings: storage buffer parameters at
 * @group(0) @binding(0..n-1) in parameter order, then (if the kernel reads graph symbols) one
 * uniform struct of i32 at @binding(n) whose members are `kernelSymbols(kernel)` in order.
 * Output is a pure function of the kernel, so the source text is the pipeline cache key.
 */

export class WgslError extends Error {}

/** What rendering an expression may need at module scope. */
interface Ctx {
  readonly helpers: Set<Helper>;
  readonly builtins: Set<Builtin>;
}

/** bf16 has no WGSL spelling: `renderWgsl` refuses such kernels before any type is printed. */
const WGSL_TYPE: Record<KType, string> = {
  f32: "f32",
  f16: "f16",
  bf16: "<no bf16 in WGSL>",
  i32: "i32",
  u32: "u32",
  bool: "bool",
};

type Render1 = (a: string, t: KType, cx: Ctx) => string;
type Render2 = (a: string, b: string, t: KType, cx: Ctx) => string;

/** Calls a float helper written for f32; f16 values are widened and narrowed around it. */
function viaF32(h: Helper, t: KType, cx: Ctx, ...args: string[]): string {
  cx.helpers.add(h);
  if (t === "f32") return `${h}(${args.join(", ")})`;
  return `${WGSL_TYPE[t]}(${h}(${args.map((a) => `f32(${a})`).join(", ")}))`;
}

const UNARY: Record<UnOp, Render1> = {
  neg: (a) => `(-${a})`,
  abs: (a) => `abs(${a})`,
  exp: (a) => `exp(${a})`,
  log: (a) => `log(${a})`,
  sqrt: (a) => `sqrt(${a})`,
  rsqrt: (a) => `inverseSqrt(${a})`,
  // Some drivers compute tanh as a ratio of exponentials that overflows to NaN; |x| > 15 is ±1 anyway.
  tanh: (a, t) => `tanh(clamp(${a}, ${floatLit(-15, t)}, ${floatLit(15, t)}))`,
  erf: (a, t, cx) => viaF32("tokr_erf", t, cx, a),
  floor: (a) => `floor(${a})`,
  ceil: (a) => `ceil(${a})`,
  not: (a) => `(!${a})`,
};

const infix =
  (op: string): Render2 =>
  (a, b) =>
    `(${a} ${op} ${b})`;

/**
 * `plain` for non-floats; for f32/f16 the helper `tokr_<op>_<t>`, which tests NaN on the bits:
 * Mesa folds `x != x` to false (WGSL lets it assume no NaN), and WGSL min/max may return the
 * non-NaN operand where KIR's propagate NaN (as ReduceMax and rankings need).
 */
const nanExact =
  (op: "eq" | "ne" | "min" | "max", plain: Render2): Render2 =>
  (a, b, t, cx) => {
    if (t !== "f32" && t !== "f16") return plain(a, b, t, cx);
    const h = `tokr_${op}_${t}` as const;
    cx.helpers.add(h);
    cx.helpers.add("tokr_isnan_f32");
    if (t === "f16") cx.helpers.add("tokr_isnan_f16");
    return `${h}(${a}, ${b})`;
  };

/** i32 `/` and `%` truncate toward zero in WGSL, as KIR specifies; f32 `%` is the truncated remainder. */
const BINARY: Record<BinOp, Render2> = {
  add: infix("+"),
  sub: infix("-"),
  mul: infix("*"),
  div: infix("/"),
  mod: infix("%"),
  min: nanExact("min", (a, b) => `min(${a}, ${b})`),
  max: nanExact("max", (a, b) => `max(${a}, ${b})`),
  pow: (a, b, t, cx) => viaF32("tokr_pow", t, cx, a, b),
  lt: infix("<"),
  le: infix("<="),
  gt: infix(">"),
  ge: infix(">="),
  eq: nanExact("eq", infix("==")),
  ne: nanExact("ne", infix("!=")),
  and: infix("&&"),
  or: infix("||"),
};

const SUBGROUP: Record<SubgroupOp, (a: string, arg: string | undefined) => string> = {
  add: (a) => `subgroupAdd(${a})`,
  max: (a) => `subgroupMax(${a})`,
  min: (a) => `subgroupMin(${a})`,
  shuffle_xor: (a, mask) => `subgroupShuffleXor(${a}, u32(${mask}))`,
};

/** WGSL entry-point builtins (u32 scalars or vectors) and how a KIR builtin reads them. */
const BUILTIN: Record<Builtin, { readonly decl: string; readonly vec: boolean }> = {
  global_id: { decl: "@builtin(global_invocation_id) gid: vec3<u32>", vec: true },
  local_id: { decl: "@builtin(local_invocation_id) lid: vec3<u32>", vec: true },
  group_id: { decl: "@builtin(workgroup_id) wid: vec3<u32>", vec: true },
  num_groups: { decl: "@builtin(num_workgroups) nwg: vec3<u32>", vec: true },
  subgroup_size: { decl: "@builtin(subgroup_size) sg_size: u32", vec: false },
  subgroup_lane: { decl: "@builtin(subgroup_invocation_id) sg_lane: u32", vec: false },
};
const builtinVar = (b: Builtin): string => BUILTIN[b].decl.split(" ")[1].replace(":", "");

/** Shortest decimal that reads back as the same f32 (or f16) value. */
function shortest(v: number, round: (x: number) => number): string {
  for (let p = 1; p < 17; p++) {
    const s = Number(v.toPrecision(p));
    if (round(s) === v) return String(s);
  }
  return String(v);
}

function floatLit(v: number, t: KType): string {
  const r = t === "f16" ? roundF16(v) : Math.fround(v);
  if (Number.isNaN(r)) return `tokr_nan_${t}()`;
  if (!Number.isFinite(r)) return r > 0 ? `tokr_inf_${t}()` : `(-tokr_inf_${t}())`;
  let s = shortest(Math.abs(r), t === "f16" ? roundF16 : Math.fround);
  if (!/[.e]/.test(s)) s += ".0";
  const lit = `${s}${t === "f16" ? "h" : "f"}`;
  return r < 0 || Object.is(r, -0) ? `(-${lit})` : lit;
}

function constLit(v: number, t: KType, cx: Ctx): string {
  switch (t) {
    case "f32":
    case "f16": {
      const s = floatLit(v, t);
      if (s.includes("tokr_inf")) cx.helpers.add(t === "f16" ? "tokr_inf_f16" : "tokr_inf_f32");
      if (s.includes("tokr_nan")) cx.helpers.add(t === "f16" ? "tokr_nan_f16" : "tokr_nan_f32");
      return s;
    }
    case "bf16":
      throw new WgslError("bf16 has no WGSL type (bf16 is a CUDA-only target option)");
    case "i32":
      // -2^31 has no literal spelling (2147483648i overflows).
      return v === -(2 ** 31) ? "(-2147483647i - 1i)" : v < 0 ? `(${v}i)` : `${v}i`;
    case "u32":
      return `${v}u`;
    case "bool":
      return v ? "true" : "false";
  }
}

const reg = (name: string): string => `v_${name}`;
const arr = (name: string): string => `b_${name}`;
const uni = (name: string): string => `u.s_${name}`;

function expr(e: Expr, cx: Ctx): string {
  switch (e.k) {
    case "const":
      return constLit(e.v, e.t, cx);
    case "sym":
      return uni(e.name);
    case "var":
      return reg(e.name);
    case "builtin":
      cx.builtins.add(e.name);
      return BUILTIN[e.name].vec
        ? `i32(${builtinVar(e.name)}.${"xyz"[e.axis]})`
        : `i32(${builtinVar(e.name)})`;
    case "unary":
      return UNARY[e.op](expr(e.a, cx), e.t, cx);
    case "binary": {
      // A constant zero divisor is a WGSL shader-creation error even where the code never runs
      // (index math of an empty dim): read the zero through a var, keeping WGSL's run-time rule.
      const zeroDivisor =
        (e.op === "div" || e.op === "mod") &&
        e.b.k === "const" &&
        e.b.v === 0 &&
        (e.b.t === "i32" || e.b.t === "u32");
      let b: string;
      if (zeroDivisor) {
        const h = e.b.t === "i32" ? "tokr_zero_i32" : "tokr_zero_u32";
        cx.helpers.add(h);
        b = `${h}()`;
      } else b = expr(e.b, cx);
      return BINARY[e.op](expr(e.a, cx), b, e.a.t, cx);
    }
    case "select":
      return `select(${expr(e.b, cx)}, ${expr(e.a, cx)}, ${expr(e.cond, cx)})`;
    case "cast":
      return `${WGSL_TYPE[e.t]}(${expr(e.a, cx)})`;
    case "load":
      return `${arr(e.array)}[${expr(e.index, cx)}]`;
    case "subgroup":
      return SUBGROUP[e.op](expr(e.a, cx), e.arg ? expr(e.arg, cx) : undefined);
  }
}

function stmts(ss: readonly Stmt[], ind: string, cx: Ctx, out: string[]): void {
  for (const s of ss) {
    switch (s.k) {
      case "decl":
        out.push(`${ind}${s.mut ? "var" : "let"} ${reg(s.name)}: ${WGSL_TYPE[s.t]} = ${expr(s.init, cx)};`);
        break;
      case "assign":
        out.push(`${ind}${reg(s.name)} = ${expr(s.value, cx)};`);
        break;
      case "store":
        out.push(`${ind}${arr(s.array)}[${expr(s.index, cx)}] = ${expr(s.value, cx)};`);
        break;
      case "if":
        out.push(`${ind}if (${expr(s.cond, cx)}) {`);
        stmts(s.then, ind + "  ", cx, out);
        if (s.else.length > 0) {
          out.push(`${ind}} else {`);
          stmts(s.else, ind + "  ", cx, out);
        }
        out.push(`${ind}}`);
        break;
      case "for": {
        const v = reg(s.v);
        out.push(
          `${ind}for (var ${v}: i32 = ${expr(s.from, cx)}; ${v} < ${expr(s.to, cx)}; ${v} += ${s.step}i) {`,
        );
        stmts(s.body, ind + "  ", cx, out);
        out.push(`${ind}}`);
        break;
      }
      case "barrier":
        out.push(`${ind}workgroupBarrier();`);
        break;
      case "break":
        out.push(`${ind}break;`);
        break;
      case "return":
        out.push(`${ind}return;`);
        break;
    }
  }
}

/** Whether a kernel mentions type `t` (parameters, arrays, registers and expressions). */
function usesType(k: Kernel, t: KType): boolean {
  return (
    k.params.some((p) => p.t === t) ||
    k.arrays.some((a) => a.t === t) ||
    someInBody(k.body, { stmt: (s) => s.k === "decl" && s.t === t, expr: (e) => e.t === t })
  );
}

/** Renders one kernel as a WGSL module with entry point `main`. */
export function renderWgsl(k: Kernel): string {
  if (usesType(k, "bf16"))
    throw new WgslError(
      `kernel ${k.name}: uses bf16, which WGSL does not have; compile for --target cuda, or without --bf16`,
    );
  const cx: Ctx = { helpers: new Set(), builtins: new Set() };
  const body: string[] = [];
  for (const a of k.arrays)
    if (a.scope === "private") body.push(`  var ${arr(a.name)}: array<${WGSL_TYPE[a.t]}, ${a.size}>;`);
  stmts(k.body, "  ", cx, body);

  const f16 = k.features.includes("f16") || usesType(k, "f16");
  const sub =
    k.features.includes("subgroups") || cx.builtins.has("subgroup_size") || cx.builtins.has("subgroup_lane");
  const out: string[] = [`// kernel ${k.name}`];
  if (f16) out.push("enable f16;");
  if (sub) out.push("enable subgroups;", "diagnostic(off, subgroup_uniformity);");
  for (const h of [...cx.helpers].sort()) out.push("", HELPERS[h]);
  out.push("");
  k.params.forEach((p, i) => {
    const access = p.access === "read" ? "read" : "read_write";
    out.push(`@group(0) @binding(${i}) var<storage, ${access}> ${arr(p.name)}: array<${WGSL_TYPE[p.t]}>;`);
  });
  const syms = kernelSymbols(k);
  if (syms.length > 0) {
    out.push(`struct Syms { ${syms.map((s) => `s_${s}: i32`).join(", ")} }`);
    out.push(`@group(0) @binding(${k.params.length}) var<uniform> u: Syms;`);
  }
  for (const a of k.arrays)
    if (a.scope === "workgroup")
      out.push(`var<workgroup> ${arr(a.name)}: array<${WGSL_TYPE[a.t]}, ${a.size}>;`);
  const ins = (Object.keys(BUILTIN) as Builtin[])
    .filter((b) => cx.builtins.has(b))
    .map((b) => BUILTIN[b].decl);
  out.push("", `@compute @workgroup_size(${k.workgroupSize.join(", ")})`);
  out.push(`fn main(${ins.join(", ")}) {`, ...body, "}", "");
  return out.join("\n");
}

/** Bytes a uniform buffer for `n` symbols needs (uniform structs round up to 16 bytes). */
export function uniformBytes(n: number): number {
  return Math.max(16, Math.ceil((n * 4) / 16) * 16);
}

const TYPE_BYTES: Record<KType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4, bool: 4 };

/** Checks a kernel against device limits; the error names the kernel and the limit. */
export function checkKernelLimits(k: Kernel, target: Target): void {
  const fail = (why: string): never => {
    throw new WgslError(`kernel ${k.name}: ${why}`);
  };
  if (k.params.length > target.maxStorageBuffersPerStage)
    fail(
      `${k.params.length} storage buffers, but the device allows ${target.maxStorageBuffersPerStage} per shader stage`,
    );
  const inv = k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2];
  if (inv > target.maxWorkgroupInvocations)
    fail(`workgroup of ${inv} invocations exceeds the device limit ${target.maxWorkgroupInvocations}`);
  const shared = k.arrays
    .filter((a) => a.scope === "workgroup")
    .reduce((s, a) => s + a.size * TYPE_BYTES[a.t], 0);
  if (shared > target.maxWorkgroupStorageBytes)
    fail(`${shared} bytes of workgroup memory exceed the device limit ${target.maxWorkgroupStorageBytes}`);
  if (!target.f16 && (k.features.includes("f16") || usesType(k, "f16")))
    fail("uses f16 but the target has no shader-f16");
  if (!target.subgroups && k.features.includes("subgroups")) fail("uses subgroups but the target has none");
  if (target.bf16 || usesType(k, "bf16")) fail("uses bf16, which WGSL does not have (a CUDA-only option)");
}
