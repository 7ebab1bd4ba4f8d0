/**
 * Symbolic dimensions in a canonical form.
 *
 * A `Dim` is a JS integer or a `SymExpr`: an integer-coefficient sum of monomials over atoms
 * (named symbols and opaque floordiv/ceildiv/min/max applications) plus a constant. Every
 * constructor here returns the canonical form, so two dims are equal iff their `key`s are.
 * Symbols stand for non-negative integers (dimension sizes); simplifications rely on that.
 */

export type Atom =
  | { readonly k: "var"; readonly name: string; readonly key: string }
  | { readonly k: "floordiv" | "ceildiv"; readonly a: Dim; readonly b: Dim; readonly key: string }
  | { readonly k: "min" | "max"; readonly args: readonly Dim[]; readonly key: string };

export interface Term {
  readonly coef: number;
  /** Sorted by key; non-empty; repeated atoms mean powers. */
  readonly factors: readonly Atom[];
  readonly key: string;
}

export interface SymExpr {
  readonly k: "sum";
  readonly c: number;
  /** Sorted canonically; coefficients are non-zero; at least one term. */
  readonly terms: readonly Term[];
  readonly key: string;
}

export type Dim = number | SymExpr;

export class DimError extends Error {}

const FUNCS = ["floordiv", "ceildiv", "mod", "min", "max"] as const;

// ---------- construction ----------

export function sym(name: string): SymExpr {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new DimError(`invalid symbol name '${name}'`);
  if ((FUNCS as readonly string[]).includes(name)) throw new DimError(`'${name}' is reserved`);
  return atomDim({ k: "var", name, key: name });
}

function checkInt(n: number): number {
  if (!Number.isSafeInteger(n)) throw new DimError(`dimension arithmetic left the safe integer range: ${n}`);
  return n === 0 ? 0 : n; // no -0
}

/** An atom as a Dim (a one-factor monomial; used when dividing monomials). */
export function atomDim(a: Atom): SymExpr {
  return makeSum(0, [{ coef: 1, factors: [a], key: a.key }]);
}

function monoKey(factors: readonly Atom[]): string {
  return factors.map((f) => f.key).join("*");
}

function termOrder(x: Term, y: Term): number {
  if (x.factors.length !== y.factors.length) return x.factors.length - y.factors.length;
  return x.key < y.key ? -1 : x.key > y.key ? 1 : 0;
}

function makeSum(c: number, terms: readonly Term[]): SymExpr {
  const s = { k: "sum" as const, c, terms, key: "" };
  return { ...s, key: printSum(s) };
}

/** Collects like terms and returns the canonical Dim (a number when no terms remain). */
function normalize(c: number, terms: readonly Term[]): Dim {
  const byKey = new Map<string, { coef: number; factors: readonly Atom[] }>();
  for (const t of terms) {
    const prev = byKey.get(t.key);
    if (prev) prev.coef = checkInt(prev.coef + t.coef);
    else byKey.set(t.key, { coef: t.coef, factors: t.factors });
  }
  const out: Term[] = [];
  for (const [key, t] of byKey) if (t.coef !== 0) out.push({ coef: t.coef, factors: t.factors, key });
  out.sort(termOrder);
  if (out.length === 0) return checkInt(c);
  return makeSum(checkInt(c), out);
}

function asSum(d: Dim): { c: number; terms: readonly Term[] } {
  return typeof d === "number" ? { c: d, terms: [] } : d;
}

export function isSym(d: Dim): d is SymExpr {
  return typeof d !== "number";
}

/** The single atom a dim consists of (coefficient 1, constant 0), if any. */
function soleAtom(d: Dim): Atom | undefined {
  if (typeof d === "number" || d.c !== 0 || d.terms.length !== 1) return undefined;
  const t = d.terms[0];
  return t.coef === 1 && t.factors.length === 1 ? t.factors[0] : undefined;
}

/** The name of the symbol when `d` is exactly one symbol (`N`, not `N + 1`). */
export function symbolName(d: Dim): string | undefined {
  const a = soleAtom(d);
  return a?.k === "var" ? a.name : undefined;
}

// ---------- arithmetic ----------

export function add(...ds: Dim[]): Dim {
  let c = 0;
  const terms: Term[] = [];
  for (const d of ds) {
    const s = asSum(d);
    c = checkInt(c + s.c);
    terms.push(...s.terms);
  }
  return normalize(c, terms);
}

export function neg(d: Dim): Dim {
  const s = asSum(d);
  return normalize(
    -s.c,
    s.terms.map((t) => ({ ...t, coef: -t.coef })),
  );
}

export function sub(a: Dim, b: Dim): Dim {
  return add(a, neg(b));
}

function scale(d: Dim, k: number): Dim {
  const s = asSum(d);
  return normalize(
    checkInt(s.c * k),
    s.terms.map((t) => ({ ...t, coef: checkInt(t.coef * k) })),
  );
}

export function mul(...ds: Dim[]): Dim {
  let acc: Dim = 1;
  for (const d of ds) acc = mul2(acc, d);
  return acc;
}

function mul2(a: Dim, b: Dim): Dim {
  if (typeof a === "number") return scale(b, a);
  if (typeof b === "number") return scale(a, b);
  const terms: Term[] = [];
  let c = checkInt(a.c * b.c);
  for (const t of a.terms) if (b.c !== 0) terms.push({ ...t, coef: checkInt(t.coef * b.c) });
  for (const t of b.terms) if (a.c !== 0) terms.push({ ...t, coef: checkInt(t.coef * a.c) });
  for (const x of a.terms)
    for (const y of b.terms) {
      const factors = [...x.factors, ...y.factors].sort((p, q) =>
        p.key < q.key ? -1 : p.key > q.key ? 1 : 0,
      );
      terms.push({ coef: checkInt(x.coef * y.coef), factors, key: monoKey(factors) });
    }
  c = checkInt(c);
  return normalize(c, terms);
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}

function divAtom(k: "floordiv" | "ceildiv", a: Dim, b: Dim): SymExpr {
  return atomDim({ k, a, b, key: `${k}(${printDim(a)}, ${printDim(b)})` });
}

/** floor(a / b); b must be positive. */
export function floordiv(a: Dim, b: Dim): Dim {
  return divide("floordiv", a, b);
}

/** ceil(a / b); b must be positive. */
export function ceildiv(a: Dim, b: Dim): Dim {
  return divide("ceildiv", a, b);
}

function divide(k: "floordiv" | "ceildiv", a: Dim, b: Dim): Dim {
  if (typeof b === "number") {
    if (b <= 0) throw new DimError(`${k} by non-positive ${b}`);
    if (typeof a === "number") return checkInt(k === "floordiv" ? Math.floor(a / b) : Math.ceil(a / b));
    if (b === 1) return a;
    // Pull out terms (and the constant's multiple of b) that b divides exactly.
    const q = Math.floor(a.c / b);
    const r = a.c - q * b;
    const outside: Term[] = [];
    const rest: Term[] = [];
    for (const t of a.terms) {
      if (t.coef % b === 0) outside.push({ ...t, coef: t.coef / b });
      else rest.push(t);
    }
    let inner: Dim;
    if (rest.length === 0) inner = k === "floordiv" ? 0 : r > 0 ? 1 : 0;
    else {
      const g = rest.reduce((acc, t) => gcd(acc, t.coef), b);
      if (g > 1 && (r === 0 || (k === "floordiv" && r < g))) {
        // floor((g*X + r) / (g*m)) = floor(X / m) for 0 <= r < g; ceil is exact only for r = 0.
        const reduced = normalize(
          0,
          rest.map((t) => ({ ...t, coef: t.coef / g })),
        );
        inner = divide(k, reduced, b / g);
      } else {
        const rem = normalize(r, rest);
        const nested = soleAtom(rem);
        if (nested && nested.k === k && typeof nested.b === "number") {
          // floordiv(floordiv(x, p), q) = floordiv(x, p*q); the same holds for ceildiv.
          inner = divide(k, nested.a, nested.b * b);
        } else inner = divAtom(k, rem, b);
      }
    }
    return add(normalize(q, outside), inner);
  }
  if (sub(a, b) === 0) return 1;
  if (a === 0) return 0;
  return divAtom(k, a, b);
}

/** a mod b for positive b, canonicalised as a - b*floordiv(a, b). */
export function mod(a: Dim, b: Dim): Dim {
  return sub(a, mul(b, floordiv(a, b)));
}

/** True when d is provably >= 0 under the assumption that every symbol is >= 0. */
export function provablyNonNeg(d: Dim): boolean {
  if (typeof d === "number") return d >= 0;
  return d.c >= 0 && d.terms.every((t) => t.coef > 0 && t.factors.every(atomNonNeg));
}

function atomNonNeg(a: Atom): boolean {
  switch (a.k) {
    case "var":
      return true;
    case "floordiv":
    case "ceildiv":
      return provablyNonNeg(a.a) && provablyNonNeg(a.b);
    case "min":
      return a.args.every(provablyNonNeg);
    case "max":
      return a.args.some(provablyNonNeg);
  }
}

/** Proves a <= b when possible; `undefined` means unknown. */
export function compareLE(a: Dim, b: Dim): boolean | undefined {
  const d = sub(b, a);
  if (typeof d === "number") return d >= 0;
  if (provablyNonNeg(d)) return true;
  if (provablyNonNeg(sub(sub(a, b), 1))) return false;
  return undefined;
}

export function min(...args: Dim[]): Dim {
  return minmax("min", args);
}

export function max(...args: Dim[]): Dim {
  return minmax("max", args);
}

function minmax(k: "min" | "max", args: Dim[]): Dim {
  if (args.length === 0) throw new DimError(`${k} of nothing`);
  const flat: Dim[] = [];
  for (const d of args) {
    const a = soleAtom(d);
    if (a && a.k === k) flat.push(...a.args);
    else flat.push(d);
  }
  // Drop every argument that another one dominates (a provable <= or >=), keeping the first of equals.
  const kept: Dim[] = [];
  for (let i = 0; i < flat.length; i++) {
    const x = flat[i];
    let dominated = false;
    for (let j = 0; j < flat.length && !dominated; j++) {
      if (i === j) continue;
      const y = flat[j];
      const yBetter = k === "min" ? compareLE(y, x) : compareLE(x, y);
      if (yBetter !== true) continue;
      const equal = sub(x, y) === 0;
      dominated = !equal || j < i;
    }
    if (!dominated) kept.push(x);
  }
  if (kept.length === 1) return kept[0];
  kept.sort((p, q) => {
    const kp = printDim(p);
    const kq = printDim(q);
    return kp < kq ? -1 : kp > kq ? 1 : 0;
  });
  return atomDim({ k, args: kept, key: `${k}(${kept.map(printDim).join(", ")})` });
}

// ---------- queries ----------

export function dimEquals(a: Dim, b: Dim): boolean {
  if (typeof a === "number" || typeof b === "number") return a === b;
  return a.key === b.key;
}

export function freeSymbols(d: Dim, out: Set<string> = new Set()): Set<string> {
  if (typeof d === "number") return out;
  for (const t of d.terms) for (const f of t.factors) atomSymbols(f, out);
  return out;
}

function atomSymbols(a: Atom, out: Set<string>): void {
  switch (a.k) {
    case "var":
      out.add(a.name);
      return;
    case "floordiv":
    case "ceildiv":
      freeSymbols(a.a, out);
      freeSymbols(a.b, out);
      return;
    case "min":
    case "max":
      for (const x of a.args) freeSymbols(x, out);
      return;
  }
}

export type DimEnv = ReadonlyMap<string, number> | Readonly<Record<string, number>>;

function lookup(env: DimEnv, name: string): number | undefined {
  return env instanceof Map ? env.get(name) : (env as Readonly<Record<string, number>>)[name];
}

/** Evaluates a dim with every symbol bound; throws naming the first unbound symbol. */
export function evalDim(d: Dim, env: DimEnv): number {
  if (typeof d === "number") return d;
  let v = d.c;
  for (const t of d.terms) {
    let p = t.coef;
    for (const f of t.factors) p *= evalAtom(f, env);
    v += p;
  }
  return checkInt(v);
}

function evalAtom(a: Atom, env: DimEnv): number {
  switch (a.k) {
    case "var": {
      const v = lookup(env, a.name);
      if (v === undefined) throw new DimError(`symbol '${a.name}' is not bound`);
      return v;
    }
    case "floordiv":
    case "ceildiv": {
      const x = evalDim(a.a, env);
      const y = evalDim(a.b, env);
      if (y <= 0) throw new DimError(`${a.k} by non-positive ${y}`);
      return checkInt(a.k === "floordiv" ? Math.floor(x / y) : Math.ceil(x / y));
    }
    case "min":
      return Math.min(...a.args.map((x) => evalDim(x, env)));
    case "max":
      return Math.max(...a.args.map((x) => evalDim(x, env)));
  }
}

/** Replaces symbols by dims and re-canonicalises. */
export function substitute(d: Dim, map: ReadonlyMap<string, Dim>): Dim {
  if (typeof d === "number") return d;
  const parts: Dim[] = [d.c];
  for (const t of d.terms) parts.push(mul(t.coef, ...t.factors.map((f) => substAtom(f, map))));
  return add(...parts);
}

function substAtom(a: Atom, map: ReadonlyMap<string, Dim>): Dim {
  switch (a.k) {
    case "var":
      return map.get(a.name) ?? atomDim(a);
    case "floordiv":
      return floordiv(substitute(a.a, map), substitute(a.b, map));
    case "ceildiv":
      return ceildiv(substitute(a.a, map), substitute(a.b, map));
    case "min":
      return min(...a.args.map((x) => substitute(x, map)));
    case "max":
      return max(...a.args.map((x) => substitute(x, map)));
  }
}

// ---------- printing and parsing ----------

export function printDim(d: Dim): string {
  return typeof d === "number" ? String(d) : d.key || printSum(d);
}

function printSum(s: { c: number; terms: readonly Term[] }): string {
  let out = "";
  s.terms.forEach((t, i) => {
    const mag = Math.abs(t.coef);
    const body = (mag === 1 ? "" : `${mag}*`) + t.key;
    if (i === 0) out = (t.coef < 0 ? "-" : "") + body;
    else out += (t.coef < 0 ? " - " : " + ") + body;
  });
  if (s.c !== 0) out += (s.c < 0 ? " - " : " + ") + String(Math.abs(s.c));
  return out;
}

/**
 * Parses the printed form: integers, symbols, + - *, parentheses and
 * floordiv/ceildiv/mod/min/max calls. `parseDim(printDim(d))` gives `d` back.
 */
export function parseDim(text: string): Dim {
  const toks = text.match(/\s*([A-Za-z_][A-Za-z0-9_]*|\d+|[-+*(),])/gy);
  const joined = (toks ?? []).join("");
  if (joined.length !== text.length && joined.trimEnd().length !== text.trimEnd().length) {
    throw new DimError(`unexpected character at offset ${joined.length} in dimension '${text}'`);
  }
  const ts = (toks ?? []).map((t) => t.trim());
  let i = 0;
  const peek = (): string | undefined => ts[i];
  const expect = (t: string): void => {
    if (ts[i] !== t) throw new DimError(`expected '${t}' in dimension '${text}'`);
    i++;
  };
  const expr = (): Dim => {
    let v = term();
    while (peek() === "+" || peek() === "-") {
      const op = ts[i++];
      const r = term();
      v = op === "+" ? add(v, r) : sub(v, r);
    }
    return v;
  };
  const term = (): Dim => {
    let v = unary();
    while (peek() === "*") {
      i++;
      v = mul(v, unary());
    }
    return v;
  };
  const unary = (): Dim => {
    if (peek() === "-") {
      i++;
      return neg(unary());
    }
    return primary();
  };
  const primary = (): Dim => {
    const t = ts[i++];
    if (t === undefined) throw new DimError(`unexpected end of dimension '${text}'`);
    if (t === "(") {
      const v = expr();
      expect(")");
      return v;
    }
    if (/^\d+$/.test(t)) return checkInt(Number(t));
    if (/^[A-Za-z_]/.test(t)) {
      if (peek() !== "(") return sym(t);
      i++;
      const args = [expr()];
      while (peek() === ",") {
        i++;
        args.push(expr());
      }
      expect(")");
      return applyFunc(t, args);
    }
    throw new DimError(`unexpected '${t}' in dimension '${text}'`);
  };
  const v = expr();
  if (i !== ts.length) throw new DimError(`unexpected '${ts[i]}' in dimension '${text}'`);
  return v;
}

/** Applies a named dim function; shared by every parser that reads dims. */
export function applyFunc(name: string, args: Dim[]): Dim {
  const two = (): [Dim, Dim] => {
    if (args.length !== 2) throw new DimError(`${name} takes 2 arguments, got ${args.length}`);
    return [args[0], args[1]];
  };
  switch (name) {
    case "floordiv":
      return floordiv(...two());
    case "ceildiv":
      return ceildiv(...two());
    case "mod":
      return mod(...two());
    case "min":
      return min(...args);
    case "max":
      return max(...args);
    default:
      throw new DimError(`unknown dimension function '${name}' (expected one of ${FUNCS.join(", ")})`);
  }
}
