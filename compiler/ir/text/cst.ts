import type { CstElement, CstNode, IToken } from "chevrotain";

/** Helpers for reading the chevrotain CST, shared by the builder's pieces. */

/** A 1-based position in the IR text. */
export interface TextPos {
  readonly line: number;
  readonly col: number;
}

/** A semantic problem at a token; the builder reports it and skips the enclosing statement. */
export class SemanticError extends Error {
  constructor(
    readonly pos: TextPos,
    message: string,
  ) {
    super(message);
  }
}

/** A statement damaged by a syntax error (already reported by the parser): skipped silently. */
export class Broken extends Error {}

function isToken(e: CstElement): e is IToken {
  return "image" in e;
}

export function posOf(t: IToken): TextPos {
  return { line: t.startLine ?? 0, col: t.startColumn ?? 0 };
}

export function fail(t: IToken, message: string): never {
  throw new SemanticError(posOf(t), message);
}

/** Tokens under `key`; a token invented by error recovery means the statement is broken. */
export function tokens(n: CstNode, key: string): IToken[] {
  const out: IToken[] = [];
  for (const e of n.children[key] ?? []) {
    if (!isToken(e)) continue;
    if (e.isInsertedInRecovery || !(e.startLine! > 0)) throw new Broken();
    out.push(e);
  }
  return out;
}

export function token(n: CstNode, key: string): IToken | undefined {
  return tokens(n, key)[0];
}

export function needToken(n: CstNode, key: string): IToken {
  const t = token(n, key);
  if (!t) throw new Broken();
  return t;
}

/** Sub-rule nodes under `key`; one cut short by error recovery means the statement is broken. */
export function nodes(n: CstNode, key: string): CstNode[] {
  const out: CstNode[] = [];
  for (const e of n.children[key] ?? []) {
    if (isToken(e)) continue;
    if (e.recoveredNode) throw new Broken();
    out.push(e);
  }
  return out;
}

export function child(n: CstNode, key: string): CstNode | undefined {
  return nodes(n, key)[0];
}

export function needChild(n: CstNode, key: string): CstNode {
  const c = child(n, key);
  if (!c) throw new Broken();
  return c;
}
