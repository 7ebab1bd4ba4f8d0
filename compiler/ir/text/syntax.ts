/** Lexical rules shared by the IR printer and parser, so that what one prints the other reads. */

/** Words with a meaning of their own; they still serve as op, attribute, graph and policy names. */
export const KEYWORDS = [
  "graph",
  "sym",
  "policy",
  "const",
  "return",
  "none",
  "scope",
  "loc",
  "node",
  "dense",
  "ref",
  "true",
  "false",
  "nan",
  "inf",
] as const;

/** An identifier: op, attribute, graph, policy, symbol, dtype and axis-role names. */
export const IDENT = /[A-Za-z_][A-Za-z0-9_.]*/;
const BARE_NAME = new RegExp(`^${IDENT.source}$`);
const BARE_VALUE = /^[A-Za-z0-9_.]+$/;

/** A name printed bare when it lexes as one identifier, else as a JSON string. */
export function printName(name: string): string {
  return BARE_NAME.test(name) ? name : JSON.stringify(name);
}

/** `%x` or `%"onnx::Mul_12"`. */
export function printValueName(name: string): string {
  return "%" + (BARE_VALUE.test(name) ? name : JSON.stringify(name));
}
