import type { AttrValue } from "../ir/attrs.js";
import type { Arg, Expr, Ident, Pos } from "../../grammar/ast.js";
import { didYouMean, type LangDiagnostic } from "../../grammar/diagnostics.js";

/**
 * Parameter schemas of the policy directives (docs/language.md, Policies) and their validation:
 * kinds, ranges, enums, unknown/missing/repeated parameters, and the checks within one directive.
 */

type ParamSpec =
  | { readonly kind: "int"; readonly min: number; readonly values?: readonly number[] }
  | { readonly kind: "ratio" }
  | { readonly kind: "positive" }
  | { readonly kind: "bool" }
  | { readonly kind: "enum"; readonly values: readonly string[] }
  | { readonly kind: "ints"; readonly min: number };

interface DirectiveSpec {
  readonly params: Readonly<Record<string, ParamSpec>>;
  readonly defaults: Readonly<Record<string, AttrValue>>;
  /** Groups of which exactly one parameter must be given. */
  readonly exactlyOne?: readonly (readonly string[])[];
  /** Groups of which at least one parameter must be given. */
  readonly atLeastOne?: readonly (readonly string[])[];
  readonly required?: readonly string[];
  /** Where the directive attaches: the first node of the scope, or its `attention` node. */
  readonly site: "first" | "attention";
  /** Whether it shrinks the token count (the composition checks track these). */
  readonly reduces: boolean;
}

export const DIRECTIVES: Readonly<Record<"prune" | "merge" | "pool" | "kv", DirectiveSpec>> = {
  prune: {
    params: {
      keep: { kind: "ratio" },
      budget: { kind: "int", min: 1 },
      // Adaptive (ATS-style): keep what scores >= threshold, at most the keep/budget capacity.
      threshold: { kind: "positive" },
      score: { kind: "enum", values: ["cls", "attention_graph", "transition", "key_norm"] },
      fuse: { kind: "bool" },
      protect: { kind: "int", min: 0 },
    },
    defaults: { score: "cls", fuse: false, protect: 0 },
    exactlyOne: [["keep", "budget"]],
    site: "first",
    reduces: true,
  },
  merge: {
    params: {
      r: { kind: "int", min: 1 },
      schedule: { kind: "ints", min: 0 },
      method: { kind: "enum", values: ["bipartite", "multi_criteria", "cluster"] },
      proportional: { kind: "bool" },
    },
    defaults: { method: "bipartite", proportional: true },
    exactlyOne: [["r", "schedule"]],
    site: "first",
    reduces: true,
  },
  pool: {
    params: {
      mode: { kind: "enum", values: ["spatial", "temporal", "stride"] },
      size: { kind: "int", min: 2 },
    },
    defaults: { size: 2 },
    required: ["mode"],
    site: "first",
    reduces: true,
  },
  kv: {
    params: {
      sink: { kind: "int", min: 0 },
      window: { kind: "int", min: 1 },
      heavy: { kind: "int", min: 0 },
      observe: { kind: "int", min: 1 },
      bits: { kind: "int", min: 2, values: [2, 4, 8, 16] },
      budget: { kind: "int", min: 1 },
    },
    defaults: { sink: 0 },
    atLeastOne: [["window", "heavy", "budget", "bits"]],
    // The cache lives at the attention node, so kv attaches there (the others before the scope).
    site: "attention",
    reduces: false,
  },
};

export type DirectiveName = keyof typeof DIRECTIVES;

/**
 * The largest score each prune `score` kind gives, so the range of a useful `threshold`: `cls` and
 * `attention_graph` are distributions over the tokens (they sum to 1 per example), `transition` is
 * `mag + dir` with mag in [0, 1] and dir in [0, 2], `key_norm` an unbounded L2 norm.
 */
export const SCORE_MAX: Readonly<Record<string, { readonly max: number; readonly why: string }>> = {
  cls: { max: 1, why: "each token's share of the CLS attention; shares sum to 1" },
  attention_graph: { max: 1, why: "the attention-graph rank sums to 1 over the tokens" },
  transition: { max: 3, why: "the magnitude change is in [0, 1], the direction change in [0, 2]" },
  key_norm: { max: Infinity, why: "a key's L2 norm" },
};

/** A directive with validated parameters (defaults filled in) and where each one was written. */
export interface CheckedDirective {
  readonly name: DirectiveName;
  readonly params: Record<string, AttrValue>;
  readonly argPos: ReadonlyMap<string, Pos>;
}

function describe(e: Expr): string {
  switch (e.k) {
    case "int":
    case "float":
      return "a number";
    case "string":
      return "a string";
    case "bool":
      return "a bool";
    case "list":
      return "a list";
    case "name":
      return `the name '${e.name}'`;
    default:
      return "an expression";
  }
}

/** A compile-time number, allowing a leading minus. */
function numberOf(e: Expr): number | undefined {
  if (e.k === "int" || e.k === "float") return e.value;
  if (e.k === "neg") {
    const v = numberOf(e.e);
    return v === undefined ? undefined : -v;
  }
  return undefined;
}

function isInt(e: Expr): boolean {
  return e.k === "int" || (e.k === "neg" && isInt(e.e));
}

/** One parameter value checked against its spec; a message (and maybe hint) on failure. */
function checkValue(
  dir: string,
  name: string,
  spec: ParamSpec,
  e: Expr,
): { value: AttrValue } | { message: string; hint?: string } {
  const what = `'${name}' of ${dir}`;
  switch (spec.kind) {
    case "int": {
      const v = numberOf(e);
      if (v === undefined || !isInt(e)) return { message: `${what} must be an integer, got ${describe(e)}` };
      if (spec.values && !spec.values.includes(v))
        return { message: `${what} must be one of ${spec.values.join(", ")}, got ${v}` };
      if (v < spec.min) return { message: `${what} must be an integer >= ${spec.min}, got ${v}` };
      return { value: v };
    }
    case "ratio": {
      const v = numberOf(e);
      if (v === undefined) return { message: `${what} must be a number, got ${describe(e)}` };
      if (!(v > 0 && v <= 1)) return { message: `${what} must be in (0, 1], got ${v}` };
      return { value: v };
    }
    case "positive": {
      const v = numberOf(e);
      if (v === undefined) return { message: `${what} must be a number, got ${describe(e)}` };
      if (!(v > 0)) return { message: `${what} must be a number > 0, got ${v}` };
      return { value: v };
    }
    case "bool":
      return e.k === "bool"
        ? { value: e.value }
        : { message: `${what} must be true or false, got ${describe(e)}` };
    case "enum": {
      const s = e.k === "name" ? e.name : e.k === "string" ? e.value : undefined;
      if (s === undefined)
        return { message: `${what} must be one of ${spec.values.join(", ")}, got ${describe(e)}` };
      if (!spec.values.includes(s)) {
        const hint = didYouMean(s, spec.values);
        return {
          message: `${what} must be one of ${spec.values.join(", ")}, got '${s}'`,
          ...(hint ? { hint } : {}),
        };
      }
      return { value: s };
    }
    case "ints": {
      if (e.k !== "list" || e.items.length === 0)
        return { message: `${what} must be a non-empty list of integers, got ${describe(e)}` };
      const out: number[] = [];
      for (const it of e.items) {
        const v = numberOf(it);
        if (v === undefined || !isInt(it) || v < spec.min)
          return { message: `${what} must hold integers >= ${spec.min}` };
        out.push(v);
      }
      return { value: out };
    }
  }
}

function isDirective(name: string): name is DirectiveName {
  return Object.hasOwn(DIRECTIVES, name);
}

/**
 * Validates `directive(args)`: the directive name, every argument, the required groups and the
 * checks within one directive (prune budget vs protected tokens, prune threshold vs the score's
 * range, kv budget vs sink+window+heavy).
 * Reports into `diags`; returns undefined if anything was wrong.
 */
export function checkDirective(
  directive: Ident,
  args: readonly Arg[],
  diags: LangDiagnostic[],
): CheckedDirective | undefined {
  const n0 = diags.length;
  const err = (pos: Pos, message: string, hint?: string): void => {
    diags.push({ pos, message, ...(hint ? { hint } : {}) });
  };
  const dir = directive.name;
  if (!isDirective(dir)) {
    err(directive.pos, `unknown policy directive '${dir}'`, didYouMean(dir, Object.keys(DIRECTIVES)));
    return undefined;
  }
  const spec = DIRECTIVES[dir];
  const params: Record<string, AttrValue> = {};
  const argPos = new Map<string, Pos>();
  const valuePos = new Map<string, Pos>();
  for (const a of args) {
    if (!a.name) {
      err(a.value.pos, `policy parameters are named: write ${dir}(NAME: value)`);
      continue;
    }
    const name = a.name.name;
    const ps = spec.params[name];
    if (!ps) {
      err(a.name.pos, `unknown parameter '${name}' of ${dir}`, didYouMean(name, Object.keys(spec.params)));
      continue;
    }
    if (argPos.has(name)) {
      err(a.name.pos, `parameter '${name}' of ${dir} is given twice`);
      continue;
    }
    argPos.set(name, a.name.pos);
    valuePos.set(name, a.value.pos);
    const r = checkValue(dir, name, ps, a.value);
    if ("value" in r) params[name] = r.value;
    else err(a.value.pos, r.message, r.hint);
  }
  const quote = (g: readonly string[]): string => g.map((p) => `'${p}'`).join(" or ");
  for (const g of spec.exactlyOne ?? []) {
    const given = g.filter((p) => argPos.has(p));
    if (given.length === 0)
      err(
        directive.pos,
        `${dir} needs ${quote(g)}`,
        dir === "prune" && argPos.has("threshold")
          ? "an adaptive prune keeps at most ceil(keep * N) or budget tokens: give one as its capacity"
          : undefined,
      );
    else if (given.length > 1) err(argPos.get(given[1])!, `${dir} takes ${quote(g)}, not both`);
  }
  for (const g of spec.atLeastOne ?? [])
    if (!g.some((p) => argPos.has(p))) err(directive.pos, `${dir} needs at least one of ${quote(g)}`);
  for (const p of spec.required ?? []) if (!argPos.has(p)) err(directive.pos, `${dir} needs '${p}'`);
  if (diags.length > n0) return undefined;
  const full = { ...spec.defaults, ...params };
  const at = (p: string): string => {
    const q = argPos.get(p)!;
    return `${q.line}:${q.col}`;
  };
  if (dir === "prune" && typeof full.budget === "number" && (full.protect as number) > full.budget)
    err(
      argPos.get("budget")!,
      `prune budget ${full.budget} is below the ${String(full.protect)} protected tokens (protect at ${at("protect")})`,
    );
  const score = SCORE_MAX[String(full.score)];
  if (dir === "prune" && typeof full.threshold === "number" && score && full.threshold > score.max)
    err(
      valuePos.get("threshold")!,
      `'threshold' of prune must be in (0, ${score.max}] with score ${String(full.score)} (${score.why}), got ${full.threshold}`,
      "a threshold above every score keeps only the protected tokens",
    );
  if (dir === "kv" && typeof full.budget === "number") {
    const kept = ["sink", "window", "heavy"].reduce((s, p) => s + ((full[p] as number | undefined) ?? 0), 0);
    if (kept > full.budget)
      err(argPos.get("budget")!, `kv budget ${full.budget} is below sink + window + heavy = ${kept}`);
  }
  if (dir === "kv" && argPos.has("observe") && !argPos.has("heavy"))
    err(argPos.get("observe")!, "kv 'observe' (the observation window) needs 'heavy'");
  if (diags.length > n0) return undefined;
  return { name: dir, params: full, argPos };
}
