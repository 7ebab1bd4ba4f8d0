import { getOp, allOps } from "../ops/registry.js";
import type { Arg, Expr, Item, Program, Stmt, TypeExpr } from "../../grammar/ast.js";
import { didYouMean, type LangDiagnostic } from "../../grammar/diagnostics.js";
import { blockCycles } from "./cycles.js";
import { INITIALIZERS, OP_ALIASES } from "./ops.js";

type BlockItem = Extract<Item, { k: "block" }>;

/**
 * Static name resolution over the whole program, blocks that are never called included: every
 * name, callee, attribute and block argument must resolve. Messages match the lowering's so the
 * two can be merged without duplicates (lowering also catches these, but only on code it reaches).
 */
export function resolveNames(program: Program): LangDiagnostic[] {
  const out: LangDiagnostic[] = [];
  const consts = new Set<string>();
  const blocks = new Map<string, BlockItem>();
  for (const it of program.items) if (it.k === "block") blocks.set(it.name.name, it);
  const callees = (): string[] => [
    ...Object.keys(OP_ALIASES),
    ...allOps().map((d) => d.name),
    ...blocks.keys(),
  ];

  const expr = (e: Expr, vars: ReadonlySet<string>): void => {
    switch (e.k) {
      case "int":
      case "float":
      case "string":
      case "bool":
        return;
      case "list":
        return e.items.forEach((i) => expr(i, vars));
      case "name":
        if (!vars.has(e.name) && !consts.has(e.name))
          out.push({
            pos: e.pos,
            message: `unknown name '${e.name}'`,
            ...hint(e.name, [...vars, ...consts]),
          });
        return;
      case "neg":
        return expr(e.e, vars);
      case "binary":
        expr(e.a, vars);
        return expr(e.b, vars);
      case "index":
        expr(e.base, vars);
        for (const it of e.items)
          if (it.k === "at") expr(it.e, vars);
          else [it.start, it.end].forEach((x) => x && expr(x, vars));
        return;
      case "call":
        return call(e, vars);
    }
  };

  const call = (e: Extract<Expr, { k: "call" }>, vars: ReadonlySet<string>): void => {
    const args = (as: readonly Arg[]): void => as.forEach((a) => expr(a.value, vars));
    if (e.callee.k !== "name") return args(e.args);
    const name = e.callee.name;
    const block = blocks.get(name);
    const op = OP_ALIASES[name] ?? (getOp(name) ? name : undefined);
    if (block) {
      const params = block.params.map((p) => p.name.name);
      for (const a of e.args)
        if (a.name && !params.includes(a.name.name))
          out.push({
            pos: a.name.pos,
            message: `block '${name}' has no parameter '${a.name.name}'`,
            ...hint(a.name.name, params),
          });
    } else if (op) {
      const attrs = Object.keys(getOp(op)!.attrs);
      for (const a of e.args)
        if (a.name && !attrs.includes(a.name.name))
          out.push({
            pos: a.name.pos,
            message: `${op} has no attribute '${a.name.name}'`,
            ...hint(a.name.name, attrs),
          });
    } else
      out.push({ pos: e.callee.pos, message: `unknown op or block '${name}'`, ...hint(name, callees()) });
    args(e.args.filter((a) => !a.name || block || op));
  };

  const type = (t: TypeExpr, vars: ReadonlySet<string>): void => t.dims.forEach((d) => expr(d.e, vars));

  const stmts = (list: readonly Stmt[], vars: Set<string>): void => {
    for (const s of list)
      switch (s.k) {
        case "assign":
          expr(s.value, vars);
          s.targets.forEach((t) => vars.add(t.name));
          break;
        case "param": {
          type(s.type, vars);
          const init = s.init;
          const known =
            init.k === "call" &&
            init.callee.k === "name" &&
            (INITIALIZERS as readonly string[]).includes(init.callee.name);
          if (!known) expr(init, vars); // the lowering explains what initializers exist
          vars.add(s.name.name);
          break;
        }
        case "repeat":
          expr(s.count, vars);
          vars.add(s.var.name);
          stmts(s.body, vars);
          break;
        case "return":
          expr(s.value, vars);
          break;
      }
  };

  for (const it of program.items)
    switch (it.k) {
      case "const":
        expr(it.value, new Set());
        consts.add(it.name.name);
        break;
      case "block":
        stmts(it.body, new Set(it.params.map((p) => p.name.name)));
        break;
      case "model": {
        const vars = new Set(it.inputs.map((i) => i.name.name));
        stmts(it.body, vars);
        break;
      }
      case "policy": // checked against the lowered graph (policy.ts)
        break;
    }
  return [...out, ...blockCycles(program)];
}

function hint(name: string, candidates: Iterable<string>): { hint?: string } {
  const h = didYouMean(name, candidates);
  return h ? { hint: h } : {};
}
