import type { AttrValue, Attrs } from "../attrs.js";
import type { Constant, Graph, Node, SourceLoc } from "../graph.js";
import { printDim, type SymExpr } from "../sym.js";
import type { Tensor } from "../tensor.js";
import { printType } from "../types.js";
import { printName, printValueName } from "./syntax.js";

/** Options of {@link printGraph}. */
export interface PrintOptions {
  /** Constants with more elements than this print as `ref<"key">` instead of their data (default: never). */
  readonly elideConstantsOver?: number;
}

/** A number as the parser reads it back bit-exactly: JS shortest round-trip form, `nan`, `inf`, `-inf`, `-0`. */
export function printNumber(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}

/** An attribute value in the textual IR: numbers, `true`/`false`, JSON strings, dims, `[lists]`. */
export function printAttrValue(v: AttrValue): string {
  if (typeof v === "number") return printNumber(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${(v as readonly AttrValue[]).map(printAttrValue).join(", ")}]`;
  return printDim(v as SymExpr);
}

/** `{a = 1, b = "x"}` with names sorted, so equal attribute sets print equally. */
export function printAttrs(attrs: Attrs): string {
  const keys = Object.keys(attrs).sort();
  return `{${keys.map((k) => `${printName(k)} = ${printAttrValue(attrs[k])}`).join(", ")}}`;
}

/** ` loc("file":line:col node "name")` with absent parts left out; empty when there is nothing to say. */
function printLoc(loc: SourceLoc | undefined): string {
  if (!loc) return "";
  let s = loc.file !== undefined ? JSON.stringify(loc.file) : "";
  if (loc.line !== undefined) s += `:${loc.line}` + (loc.col !== undefined ? `:${loc.col}` : "");
  if (loc.node !== undefined) s += (s ? " " : "") + `node ${JSON.stringify(loc.node)}`;
  return s ? ` loc(${s})` : "";
}

function printData(t: Tensor): string {
  const item = t.dtype === "bool" ? (x: number) => (x ? "true" : "false") : printNumber;
  return `dense<[${Array.from(t.data, item).join(", ")}]>`;
}

function printConstant(c: Constant, opts: PrintOptions): string {
  const head = `const ${printValueName(c.value.name)}: ${printType(c.value.type)}`;
  const ref = (key: string): string => `ref<${JSON.stringify(key)}>`;
  if (c.data) {
    const limit = opts.elideConstantsOver;
    if (limit !== undefined && c.data.data.length > limit) return `${head} = ${ref(c.ref ?? c.value.name)}`;
    return `${head} = ${printData(c.data)}${c.ref !== undefined ? " " + ref(c.ref) : ""}`;
  }
  return c.ref !== undefined ? `${head} = ${ref(c.ref)}` : head;
}

function printNode(n: Node): string {
  const outs = n.outputs.map((v) => printValueName(v.name)).join(", ");
  const args = n.inputs.map((v) => (v ? printValueName(v.name) : "none")).join(", ");
  let s = `${outs ? `${outs} = ` : ""}${n.op}(${args})`;
  if (Object.keys(n.attrs).length) s += " " + printAttrs(n.attrs);
  if (n.policy !== undefined) s += ` policy @${printName(n.policy)}`;
  if (n.scope !== undefined) s += ` scope ${JSON.stringify(n.scope)}`;
  s += printLoc(n.loc);
  if (n.outputs.length) s += " : " + n.outputs.map((v) => printType(v.type)).join(", ");
  return s;
}

/**
 * The textual form of a graph (docs/ir.md). Deterministic: symbols, policies, constants and nodes
 * in graph order, attributes sorted, so `printGraph(parseGraph(printGraph(g))) === printGraph(g)`.
 */
export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  const params = g.inputs.map((v) => `${printValueName(v.name)}: ${printType(v.type)}`).join(", ");
  const lines = [`graph @${printName(g.name)}(${params}) {`];
  for (const s of g.symbols.values())
    lines.push(`  sym ${s.name}` + (s.capacity !== undefined ? ` <= ${printDim(s.capacity)}` : ""));
  for (const p of g.policies.values())
    lines.push(`  policy @${printName(p.name)} ${printAttrs(p.params)}${printLoc(p.loc)}`);
  for (const c of g.constants.values()) lines.push("  " + printConstant(c, opts));
  for (const n of g.nodes) lines.push("  " + printNode(n));
  lines.push(`  return ${g.outputs.map((v) => printValueName(v.name)).join(", ")}`.trimEnd(), "}");
  return lines.join("\n") + "\n";
}
