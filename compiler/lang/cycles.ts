import type { Expr, Item, Program, Stmt } from "../../grammar/ast.js";
import type { LangDiagnostic } from "../../grammar/diagnostics.js";

type BlockItem = Extract<Item, { k: "block" }>;
type Call = Extract<Expr, { k: "call" }>;

/** Calls to blocks in a block's body, in source order (types and initializers included). */
function blockCalls(body: readonly Stmt[], blocks: ReadonlyMap<string, BlockItem>): Call[] {
  const out: Call[] = [];
  const expr = (e: Expr): void => {
    switch (e.k) {
      case "int":
      case "float":
      case "string":
      case "bool":
      case "name":
        return;
      case "list":
        return e.items.forEach(expr);
      case "neg":
        return expr(e.e);
      case "binary":
        expr(e.a);
        return expr(e.b);
      case "index":
        expr(e.base);
        for (const it of e.items)
          if (it.k === "at") expr(it.e);
          else [it.start, it.end].forEach((x) => x && expr(x));
        return;
      case "call":
        if (e.callee.k === "name" && blocks.has(e.callee.name)) out.push(e);
        expr(e.callee);
        return e.args.forEach((a) => expr(a.value));
    }
  };
  const stmts = (list: readonly Stmt[]): void => {
    for (const s of list)
      switch (s.k) {
        case "assign":
        case "return":
          expr(s.value);
          break;
        case "param":
          s.type.dims.forEach((d) => expr(d.e));
          expr(s.init);
          break;
        case "repeat":
          expr(s.count);
          stmts(s.body);
          break;
      }
  };
  stmts(body);
  return out;
}

/**
 * Recursion among blocks, which inlining can never finish: one diagnostic per call that closes a
 * cycle (a depth-first walk over blocks in source order), at the callee's name, naming the cycle
 * (`block 'a' calls itself: a -> b -> a`). Both resolve.ts and lower.ts report these, so the
 * messages are identical and check.ts merges them; blocks that are never called are covered too.
 */
export function blockCycles(program: Program): LangDiagnostic[] {
  const blocks = new Map<string, BlockItem>();
  for (const it of program.items)
    if (it.k === "block" && !blocks.has(it.name.name)) blocks.set(it.name.name, it);
  const out: LangDiagnostic[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (b: BlockItem): void => {
    stack.push(b.name.name);
    for (const c of blockCalls(b.body, blocks)) {
      const name = c.callee.k === "name" ? c.callee.name : "";
      const at = stack.indexOf(name);
      if (at >= 0)
        out.push({
          pos: c.callee.pos,
          message: `block '${name}' calls itself: ${[...stack.slice(at), name].join(" -> ")}`,
        });
      else if (!done.has(name)) visit(blocks.get(name)!);
    }
    stack.pop();
    done.add(b.name.name);
  };
  for (const b of blocks.values()) if (!done.has(b.name.name)) visit(b);
  return out;
}
