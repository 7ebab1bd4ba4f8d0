import type { CstNode, IToken } from "chevrotain";
import type { AttrValue, Attrs } from "../attrs.js";
import { isFloat, isInt } from "../dtype.js";
import { Graph, type Node, type SourceLoc, type Value } from "../graph.js";
import { printDim } from "../sym.js";
import { makeTensor, numel, type Tensor } from "../tensor.js";
import { printType, type TensorType } from "../types.js";
import {
  Broken,
  child,
  fail,
  needChild,
  needToken,
  nodes,
  posOf,
  SemanticError,
  type TextPos,
  token,
  tokens,
} from "./cst.js";
import { attrValueOf, dataValueOf, dimOf, locOf, nameOf, parseString, typeOf, valueName } from "./values.js";

/** A graph built from IR text, with where things were written (for diagnostics about them). */
export interface BuiltGraph {
  readonly graph: Graph;
  readonly diagnostics: readonly { readonly pos: TextPos; readonly message: string }[];
  /** Position of each node's statement. */
  readonly nodePos: ReadonlyMap<Node, TextPos>;
  /** Position of the definition of each graph input, constant and node output. */
  readonly valuePos: ReadonlyMap<Value, TextPos>;
  /** Position of the `graph` keyword. */
  readonly graphPos: TextPos;
}

const INT_RANGE: Readonly<Record<string, readonly [number, number]>> = {
  i8: [-128, 127],
  u8: [0, 255],
  i32: [-(2 ** 31), 2 ** 31 - 1],
  i64: [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function at(p: TextPos): string {
  return `${p.line}:${p.col}`;
}

/**
 * Turns the CST of one graph into a Graph. Each statement is built on its own: a semantic error
 * is reported and the statement skipped, and values it would have defined are "poisoned" so that
 * their uses are skipped quietly instead of cascading into more errors.
 */
export function buildGraph(cst: CstNode): BuiltGraph {
  return new Builder(cst).result;
}

class Builder {
  private readonly g = new Graph("");
  private readonly diags: { pos: TextPos; message: string }[] = [];
  private readonly nodePos = new Map<Node, TextPos>();
  private readonly valuePos = new Map<Value, TextPos>();
  private readonly values = new Map<string, Value>();
  /** Every definition seen so far, built or not, for "defined twice" messages. */
  private readonly seen = new Map<string, TextPos>();
  private readonly poisoned = new Set<string>();
  /** Where each value and policy is defined anywhere in the text, for "used before" messages. */
  private readonly laterValues = new Map<string, TextPos>();
  private readonly laterPolicies = new Map<string, TextPos>();
  private readonly badPolicies = new Set<string>();
  readonly result: BuiltGraph;

  constructor(cst: CstNode) {
    const kw = token(cst, "Kw_graph");
    const graphPos = kw ? posOf(kw) : { line: 1, col: 1 };
    const statements = (cst.children.statement ?? []).filter((e): e is CstNode => "children" in e);
    this.prescan(cst, statements);
    this.attempt(() => {
      this.g.name = nameOf(needChild(cst, "name")).name;
    });
    for (const p of nodesLoose(cst, "param")) this.param(p);
    for (const s of statements) this.statement(s);
    const ret = nodesLoose(cst, "returnStmt")[0];
    if (ret) this.attempt(() => this.returnStmt(ret));
    this.result = {
      graph: this.g,
      diagnostics: this.diags,
      nodePos: this.nodePos,
      valuePos: this.valuePos,
      graphPos,
    };
  }

  /** Runs one piece; a SemanticError becomes a diagnostic, a Broken piece is dropped. Returns success. */
  private attempt(f: () => void): boolean {
    try {
      f();
      return true;
    } catch (e) {
      if (e instanceof SemanticError) this.diags.push({ pos: e.pos, message: e.message });
      else if (!(e instanceof Broken)) throw e;
      return false;
    }
  }

  private prescan(cst: CstNode, statements: readonly CstNode[]): void {
    const note = (m: Map<string, TextPos>, t: IToken | undefined, name: () => string): void => {
      if (!t || t.isInsertedInRecovery) return;
      try {
        const n = name();
        if (!m.has(n)) m.set(n, posOf(t));
      } catch {
        // a malformed name is reported when its statement is built
      }
    };
    for (const p of nodesLoose(cst, "param"))
      for (const t of tokensLoose(p, "ValueName")) note(this.laterValues, t, () => valueName(t));
    for (const s of statements) {
      const body = bodyOf(s);
      if (!body) continue;
      for (const t of definedTokens(body)) note(this.laterValues, t, () => valueName(t));
      const p = policyNameOf(body);
      if (p) note(this.laterPolicies, p.at, () => p.name);
    }
  }

  private statement(s: CstNode): void {
    const body = bodyOf(s);
    if (!body) return;
    const build = (): void => {
      if (s.recoveredNode || body.recoveredNode) throw new Broken();
      switch (body.name) {
        case "symDecl":
          return this.symDecl(body);
        case "policyDecl":
          return this.policyDecl(body);
        case "constDecl":
          return this.constDecl(body);
        case "nodeStmt":
          return this.nodeStmt(body);
      }
    };
    if (this.attempt(build)) return;
    // Uses of what a failed statement defines are skipped quietly instead of cascading.
    for (const t of definedTokens(body)) {
      const name = tryOr(() => valueName(t));
      if (name !== undefined && !this.values.has(name)) this.poisoned.add(name);
    }
    const p = policyNameOf(body);
    if (p && !this.g.policies.has(p.name)) this.badPolicies.add(p.name);
  }

  /** Checks that a new value name is free; records it as seen. */
  private claim(t: IToken): string {
    const name = valueName(t);
    const prev = this.seen.get(name);
    if (prev) fail(t, `value %${name} is already defined at ${at(prev)}`);
    this.seen.set(name, posOf(t));
    return name;
  }

  private define(v: Value, t: IToken): void {
    this.values.set(v.name, v);
    this.valuePos.set(v, posOf(t));
  }

  private use(t: IToken): Value {
    const name = valueName(t);
    const v = this.values.get(name);
    if (v) return v;
    if (this.poisoned.has(name)) throw new Broken();
    const later = this.laterValues.get(name);
    if (later) fail(t, `value %${name} is used before its definition at ${at(later)}`);
    return fail(t, `undefined value %${name}`);
  }

  private param(p: CstNode): void {
    let name: string | undefined;
    const ok = this.attempt(() => {
      const t = needToken(p, "ValueName");
      name = this.claim(t);
      this.define(this.g.addInput(typeOf(needChild(p, "type")), name), t);
    });
    if (!ok && name !== undefined && !this.values.has(name)) this.poisoned.add(name);
  }

  private symDecl(n: CstNode): void {
    const t = needToken(n, "SymWord");
    validateSymbolName(t);
    if (this.g.symbols.has(t.image)) fail(t, `symbol ${t.image} is declared twice`);
    const capExpr = child(n, "expr");
    const capacity = capExpr ? dimOf(capExpr) : undefined;
    this.g.declareSymbol({ name: t.image, ...(capacity !== undefined ? { capacity } : {}) });
  }

  private policyDecl(n: CstNode): void {
    const { name, at: nameTok } = nameOf(needChild(n, "name"));
    if (this.g.policies.has(name)) fail(nameTok, `policy @${name} is declared twice`);
    const params = this.attrs(needChild(n, "attrDict"));
    const locNode = child(n, "loc");
    const loc = locNode ? locOf(locNode) : undefined;
    this.g.policies.set(name, { name, params, ...(loc ? { loc } : {}) });
  }

  private attrs(n: CstNode): Attrs {
    const out: Record<string, AttrValue> = {};
    for (const a of nodes(n, "attr")) {
      const id = nameOf(needChild(a, "name"));
      if (id.name in out) fail(id.at, `attribute '${id.name}' is given twice`);
      out[id.name] = attrValueOf(a);
    }
    return out;
  }

  private constDecl(n: CstNode): void {
    const t = needToken(n, "ValueName");
    const name = this.claim(t);
    const type = typeOf(needChild(n, "type"));
    const denses = nodes(n, "dense");
    const refs = nodes(n, "ref");
    if (denses.length > 1) fail(needToken(denses[1], "Kw_dense"), "a constant has at most one dense<...>");
    if (refs.length > 1) fail(needToken(refs[1], "Kw_ref"), "a constant has at most one ref<...>");
    const data = denses.length ? denseData(denses[0], type) : undefined;
    const ref = refs.length ? parseString(needToken(refs[0], "StringLit")) : undefined;
    this.define(this.g.addConstant(type, name, data, ref), t);
  }

  private nodeStmt(n: CstNode): void {
    const outs = tokens(n, "outputs");
    const opTok = needToken(n, "op");
    const names = outs.map((t) => this.claim(t));
    const inputs = nodes(n, "operand").map((o) =>
      token(o, "Kw_none") ? null : this.use(needToken(o, "ValueName")),
    );
    const attrNode = child(n, "attrDict");
    const attrs = attrNode ? this.attrs(attrNode) : {};
    const policy = token(n, "Kw_policy") ? this.policyRef(needChild(n, "name")) : undefined;
    const scopeTok = token(n, "StringLit");
    const locNode = child(n, "loc");
    const loc: SourceLoc | undefined = locNode ? locOf(locNode) : undefined;
    const typeNodes = nodes(n, "type");
    if (typeNodes.length !== outs.length) {
      const where = token(n, "Colon") ?? opTok;
      const plural = (k: number, w: string): string => `${k} ${w}${k === 1 ? "" : "s"}`;
      fail(
        where,
        `${opTok.image} has ${plural(outs.length, "output")} but ${plural(typeNodes.length, "type")} after ':'`,
      );
    }
    const types: TensorType[] = typeNodes.map(typeOf);
    const node = this.g.addNode(opTok.image, inputs, types, attrs, {
      ...(policy !== undefined ? { policy } : {}),
      ...(scopeTok ? { scope: parseString(scopeTok) } : {}),
      ...(loc ? { loc } : {}),
      names,
    });
    this.nodePos.set(node, posOf(outs[0] ?? opTok));
    node.outputs.forEach((v, i) => this.define(v, outs[i]));
  }

  private policyRef(n: CstNode): string {
    const id = nameOf(n);
    if (this.g.policies.has(id.name)) return id.name;
    if (this.badPolicies.has(id.name)) throw new Broken();
    const later = this.laterPolicies.get(id.name);
    if (later) fail(id.at, `policy @${id.name} is used before its declaration at ${at(later)}`);
    return fail(id.at, `undefined policy @${id.name}`);
  }

  private returnStmt(n: CstNode): void {
    for (const t of tokens(n, "ValueName")) this.attempt(() => this.g.outputs.push(this.use(t)));
  }
}

function validateSymbolName(t: IToken): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(t.image)) fail(t, `invalid symbol name '${t.image}'`);
  if (["floordiv", "ceildiv", "mod", "min", "max"].includes(t.image))
    fail(t, `'${t.image}' is reserved for a dim function`);
}

function denseData(n: CstNode, type: TensorType): Tensor {
  const kw = needToken(n, "Kw_dense");
  const vals = nodes(n, "dataValue").map(dataValueOf);
  const shape = type.dims.map((d) =>
    typeof d === "number"
      ? d
      : fail(kw, `inline data needs a static shape, got ${printType(type)} (${printDim(d)})`),
  );
  const want = numel(shape);
  if (vals.length !== want)
    fail(kw, `dense<...> holds ${vals.length} values but ${printType(type)} needs ${want}`);
  const dt = type.dtype;
  for (const { v, at } of vals) {
    if (dt === "bool" && v !== 0 && v !== 1) fail(at, `bool data must be true or false, found ${String(v)}`);
    if (isInt(dt)) {
      const [lo, hi] = INT_RANGE[dt];
      if (!Number.isInteger(v) || v < lo || v > hi)
        fail(at, `${dt} data must be integers in [${lo}, ${hi}], found ${String(v)}`);
    }
  }
  if (!isFloat(dt) && !isInt(dt) && dt !== "bool") fail(kw, `unsupported dtype ${dt}`);
  return makeTensor(
    dt,
    shape,
    vals.map((x) => x.v),
  );
}

/** The one sub-rule inside a `statement` node. */
function bodyOf(s: CstNode): CstNode | undefined {
  return Object.values(s.children)
    .flat()
    .find((e): e is CstNode => "children" in e);
}

/** Tokens naming the values a statement defines (read leniently: the statement may be damaged). */
function definedTokens(body: CstNode): IToken[] {
  return tokensLoose(body, body.name === "constDecl" ? "ValueName" : "outputs");
}

function policyNameOf(body: CstNode): { name: string; at: IToken } | undefined {
  if (body.name !== "policyDecl") return undefined;
  const n = nodesLoose(body, "name")[0];
  return n ? tryOr(() => nameOf(n)) : undefined;
}

function tryOr<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** Children without the checks of cst.ts, for the top level where a damaged part is skipped alone. */
function nodesLoose(n: CstNode, key: string): CstNode[] {
  return (n.children[key] ?? []).filter((e): e is CstNode => "children" in e && !e.recoveredNode);
}

function tokensLoose(n: CstNode, key: string): IToken[] {
  return (n.children[key] ?? []).filter((e): e is IToken => "image" in e && !e.isInsertedInRecovery);
}
