import type { Arg, Expr, Item, PolicyRule, Program, SliceItem, Stmt, TypeExpr } from "./ast.js";
import { selectorText } from "./selector.js";

/**
 * `tokr fmt`: the canonical layout of a program, printed from the AST. Two-space indentation, one
 * statement per line, a blank line between items, canonical spacing and parentheses. Comments are
 * kept: those on lines before a statement go above it, one on the statement's own (first) line
 * goes after it; comments the layout has no place for (before a closing `}`) move above the next
 * item. The output formats to itself.
 */
export function formatProgram(p: Program): string {
  const pending = [...(p.comments ?? [])].sort((a, b) => a.line - b.line);
  const out: string[] = [];
  /** Comments above `line`, at `indent`. */
  const above = (line: number, indent: string): void => {
    while (pending.length && pending[0].line < line) out.push(indent + pending.shift()!.text);
  };
  /** `text` for a construct starting on `line`, with a comment on that line appended. */
  const emit = (line: number, indent: string, text: string): void => {
    above(line, indent);
    const trailing = pending.length && pending[0].line === line ? ` ${pending.shift()!.text}` : "";
    out.push(indent + text + trailing);
  };
  const body = (stmts: readonly Stmt[], indent: string): void => {
    for (const s of stmts) {
      const line = stmtLine(s);
      switch (s.k) {
        case "assign":
          emit(line, indent, `${s.targets.map((t) => t.name).join(", ")} = ${expr(s.value)}`);
          break;
        case "param":
          emit(line, indent, `param ${s.name.name}: ${type(s.type)} = ${expr(s.init)}`);
          break;
        case "return":
          emit(line, indent, `return ${expr(s.value)}`);
          break;
        case "repeat":
          emit(line, indent, `repeat ${expr(s.count)} as ${s.var.name} {`);
          body(s.body, indent + "  ");
          out.push(indent + "}");
          break;
      }
    }
  };
  p.items.forEach((it, i) => {
    if (i > 0 && !(it.k === "const" && p.items[i - 1].k === "const")) out.push("");
    const line = it.name.pos.line;
    switch (it.k) {
      case "const":
        emit(line, "", `${it.name.name} = ${expr(it.value)}`);
        break;
      case "block": {
        const params = it.params.map((q) => (q.kind ? `${q.name.name}: ${q.kind.name}` : q.name.name));
        emit(line, "", `block ${it.name.name}(${params.join(", ")}) {`);
        body(it.body, "  ");
        out.push("}");
        break;
      }
      case "model": {
        const ins = it.inputs.map((d) => `${d.name.name}: ${type(d.type)}`);
        const outs = it.outputs.map((d) => (d.type ? `${d.name.name}: ${type(d.type)}` : d.name.name));
        emit(line, "", `model ${it.name.name}(${ins.join(", ")}) -> (${outs.join(", ")}) {`);
        body(it.body, "  ");
        out.push("}");
        break;
      }
      case "policy":
        emit(line, "", `policy ${it.name.name} {`);
        for (const r of it.rules) emit(r.pos.line, "  ", rule(r));
        out.push("}");
        break;
    }
  });
  above(Infinity, "");
  return out.join("\n") + "\n";
}

function stmtLine(s: Stmt): number {
  switch (s.k) {
    case "assign":
      return s.targets[0].pos.line;
    case "param":
      return s.name.pos.line;
    case "repeat":
    case "return":
      return s.pos.line;
  }
}

function rule(r: PolicyRule): string {
  return `${selectorText(r.selector)}: ${r.directive.name}(${r.args.map(arg).join(", ")})`;
}

function type(t: TypeExpr): string {
  const dims = t.dims.map((d) => expr(d.e) + (d.axis ? `@${d.axis.name}` : ""));
  return `${t.dtype.name}[${dims.join(", ")}]`;
}

function arg(a: Arg): string {
  return a.name ? `${a.name.name}: ${expr(a.value)}` : expr(a.value);
}

function slice(s: SliceItem): string {
  if (s.k === "at") return expr(s.e);
  return `${s.start ? expr(s.start) : ""}:${s.end ? expr(s.end) : ""}`;
}

const PREC = { "+": 1, "-": 1, "*": 2, "/": 2 } as const;

/** Binding strength: binary by operator, unary minus 3, everything else atomic. */
function prec(e: Expr): number {
  return e.k === "binary" ? PREC[e.op] : e.k === "neg" ? 3 : 4;
}

function wrap(e: Expr, min: number): string {
  return prec(e) < min ? `(${expr(e)})` : expr(e);
}

/** A float keeps a `.` or exponent so that it reads back as a float. */
function float(v: number): string {
  const s = String(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Canonical source of an expression, with the parentheses its operators need (left-associative). */
export function expr(e: Expr): string {
  switch (e.k) {
    case "int":
      return String(e.value);
    case "float":
      return float(e.value);
    case "string":
      return JSON.stringify(e.value);
    case "bool":
      return String(e.value);
    case "name":
      return e.name;
    case "list":
      return `[${e.items.map(expr).join(", ")}]`;
    case "call":
      return `${wrap(e.callee, 4)}(${e.args.map(arg).join(", ")})`;
    case "index":
      return `${wrap(e.base, 4)}[${e.items.map(slice).join(", ")}]`;
    case "neg":
      return `-${wrap(e.e, 3)}`;
    case "binary": {
      const p = PREC[e.op];
      return `${wrap(e.a, p)} ${e.op} ${wrap(e.b, p + 1)}`;
    }
  }
}

/** Items in source order without positions, to compare programs modulo layout (tests). */
export function stripPositions(p: Program): unknown {
  return JSON.parse(
    JSON.stringify(p.items satisfies readonly Item[], (k, v: unknown) =>
      k === "pos" || k === "end" || k === "selectorPos" ? undefined : v,
    ),
  );
}
