import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { OP_ALIASES } from "../../compiler/lang/ops.js";
import { repoRoot } from "../util/helpers.js";

/** The subset of the TextMate grammar format editors/tokr.tmLanguage.json uses. */
interface Rule {
  readonly name?: string;
  readonly match?: string;
  readonly begin?: string;
  readonly end?: string;
  readonly include?: string;
  readonly captures?: Readonly<Record<string, { readonly name: string }>>;
  readonly beginCaptures?: Readonly<Record<string, { readonly name: string }>>;
  readonly endCaptures?: Readonly<Record<string, { readonly name: string }>>;
  readonly patterns?: readonly Rule[];
}
interface Grammar {
  readonly scopeName: string;
  readonly patterns: readonly Rule[];
  readonly repository: Readonly<Record<string, Rule>>;
}

const grammar = JSON.parse(
  readFileSync(join(repoRoot, "editors", "tokr.tmLanguage.json"), "utf8"),
) as Grammar;

/** Rules with `include`s and pattern-only groups expanded, in order. */
function flatten(rules: readonly Rule[]): Rule[] {
  return rules.flatMap((r) => {
    if (r.include) return flatten([grammar.repository[r.include.slice(1)]]);
    if (!r.match && !r.begin && r.patterns) return flatten(r.patterns);
    return [r];
  });
}

interface Token {
  readonly text: string;
  readonly scope: string;
}

/**
 * Tokenises like a TextMate engine, simplified: per line, the leftmost match among the context's
 * rules wins (the earlier rule on ties); `begin` pushes a context whose `end` is also tried.
 */
function tokenize(source: string): Token[] {
  const out: Token[] = [];
  const stack: Rule[] = [];
  const emit = (m: RegExpExecArray, name: string | undefined, caps: Rule["captures"]): void => {
    if (name) out.push({ text: m[0], scope: name });
    for (const [i, c] of Object.entries(caps ?? {}))
      if (m[Number(i)]) out.push({ text: m[Number(i)], scope: c.name });
  };
  for (const line of source.split("\n")) {
    let pos = 0;
    while (pos < line.length) {
      const top = stack.at(-1);
      const rules = flatten(top ? (top.patterns ?? []) : grammar.patterns);
      let best: { m: RegExpExecArray; rule: Rule | "end" } | undefined;
      const tryRe = (src: string, rule: Rule | "end"): void => {
        const re = new RegExp(src, "g");
        re.lastIndex = pos;
        const m = re.exec(line);
        if (m && m[0].length > 0 && (!best || m.index < best.m.index)) best = { m, rule };
      };
      if (top?.end) tryRe(top.end, "end");
      for (const r of rules) tryRe(r.match ?? r.begin ?? "(?!)", r);
      if (!best) break;
      const { m, rule } = best;
      if (rule === "end") {
        emit(m, undefined, top?.endCaptures);
        stack.pop();
      } else if (rule.begin) {
        emit(m, rule.name, rule.beginCaptures);
        stack.push(rule);
      } else emit(m, rule.name, rule.captures);
      pos = m.index + m[0].length;
    }
  }
  return out;
}

/** The scopes `text` got (every occurrence). */
const scopesOf = (toks: readonly Token[], text: string): string[] => [
  ...new Set(toks.filter((t) => t.text === text).map((t) => t.scope)),
];

const read = (rel: string): string => readFileSync(join(repoRoot, rel), "utf8");

test("the grammar is well-formed: every include resolves and every regex compiles", () => {
  assert.equal(grammar.scopeName, "source.tokr");
  const all = flatten([...grammar.patterns, ...Object.values(grammar.repository)]);
  const visit = (r: Rule): void => {
    for (const src of [r.match, r.begin, r.end]) if (src) assert.doesNotThrow(() => new RegExp(src), src);
    flatten(r.patterns ?? []).forEach(visit);
  };
  all.forEach(visit);
});

test("examples/tiny.tokr: keywords, types, roles, numbers, comments, ops, initializers", () => {
  const toks = tokenize(read("examples/tiny.tokr"));
  assert.deepEqual(scopesOf(toks, "block"), ["keyword.control.tokr"]);
  assert.deepEqual(scopesOf(toks, "repeat"), ["keyword.control.tokr"]);
  assert.deepEqual(scopesOf(toks, "param"), ["keyword.control.tokr"]);
  assert.deepEqual(scopesOf(toks, "return"), ["keyword.control.tokr"]);
  assert.deepEqual(scopesOf(toks, "tiny"), ["entity.name.function.tokr"]);
  assert.deepEqual(scopesOf(toks, "f32"), ["storage.type.tokr"]);
  assert.deepEqual(scopesOf(toks, "int"), ["storage.type.tokr"]);
  assert.deepEqual(scopesOf(toks, "token"), ["storage.modifier.role.tokr"]);
  assert.deepEqual(scopesOf(toks, "0.2"), ["constant.numeric.float.tokr"]);
  assert.deepEqual(scopesOf(toks, "8"), ["constant.numeric.integer.tokr"]);
  assert.deepEqual(scopesOf(toks, "matmul"), ["support.function.op.tokr"]);
  assert.deepEqual(scopesOf(toks, "attention"), ["support.function.op.tokr"]);
  assert.deepEqual(scopesOf(toks, "normal"), ["support.function.initializer.tokr"]);
  assert.deepEqual(scopesOf(toks, "perm"), ["variable.parameter.tokr"]);
  // A block call is a call, not an op.
  assert.deepEqual(scopesOf(toks, "layer"), ["entity.name.function.tokr", "entity.name.function.call.tokr"]);
  const comment = toks.find((t) => t.scope.startsWith("comment"));
  assert.equal(
    comment?.text,
    "// A 2-block pre-norm transformer over tokens of width `dim`, with seeded parameters.",
  );
});

test("examples/fmnist-vit/vit.tokr: strings, IR op names, float constants", () => {
  const toks = tokenize(read("examples/fmnist-vit/vit.tokr"));
  assert.deepEqual(scopesOf(toks, '"conv_proj.weight"'), ["string.quoted.double.tokr"]);
  assert.deepEqual(scopesOf(toks, '"onnx::MatMul_"'), ["string.quoted.double.tokr"]);
  assert.deepEqual(scopesOf(toks, "Conv"), ["support.function.op.tokr"]);
  assert.deepEqual(scopesOf(toks, "Shape"), ["support.function.op.tokr"]);
  assert.deepEqual(scopesOf(toks, "file"), ["support.function.initializer.tokr"]);
  assert.deepEqual(scopesOf(toks, "0.000001"), ["constant.numeric.float.tokr"]);
  assert.deepEqual(scopesOf(toks, "817"), ["constant.numeric.integer.tokr"]);
  assert.deepEqual(scopesOf(toks, "->"), ["keyword.operator.arrow.tokr"]);
});

test("policies: directives, selectors, parameters, enum values; the block ends at its brace", () => {
  const toks = tokenize(`policy tome {
  blocks[0..5]: merge(r: 8, proportional: true)
  blocks.*.attn: prune(keep: 0.7, score: cls, protect: 1) // keep most
}
model m(x: f32[B, N@token, 8]) -> (y) {
  y = prune(x, keep: 4)
}
`);
  assert.deepEqual(scopesOf(toks, "policy"), ["keyword.control.tokr"]);
  assert.deepEqual(scopesOf(toks, "tome"), ["entity.name.type.policy.tokr"]);
  assert.deepEqual(scopesOf(toks, "merge"), ["keyword.other.directive.policy.tokr"]);
  // In a policy `prune` is a directive; in a model body it is the op alias.
  assert.deepEqual(scopesOf(toks, "prune"), [
    "keyword.other.directive.policy.tokr",
    "support.function.op.tokr",
  ]);
  assert.deepEqual(scopesOf(toks, "blocks"), ["entity.name.tag.selector.tokr"]);
  assert.deepEqual(scopesOf(toks, "cls"), ["constant.other.enum.tokr"]);
  assert.deepEqual(scopesOf(toks, "keep"), ["variable.parameter.tokr"]);
  assert.deepEqual(scopesOf(toks, "true"), ["constant.language.boolean.tokr"]);
  assert.deepEqual(scopesOf(toks, "0.7"), ["constant.numeric.float.tokr"]);
  assert.deepEqual(scopesOf(toks, "// keep most"), ["comment.line.double-slash.tokr"]);
  assert.deepEqual(scopesOf(toks, "model"), ["keyword.control.tokr"]);
});

test("every op alias of the language is scoped as an op when called", () => {
  for (const alias of Object.keys(OP_ALIASES))
    assert.deepEqual(scopesOf(tokenize(`y = ${alias}(x)`), alias), ["support.function.op.tokr"], alias);
});

test("every .tokr file under examples/ tokenises, with no keyword outside keyword scope", () => {
  const files = readdirSync(join(repoRoot, "examples"), { recursive: true, encoding: "utf8" }).filter((f) =>
    f.endsWith(".tokr"),
  );
  assert.ok(files.length >= 2);
  for (const f of files) {
    const toks = tokenize(read(join("examples", f)));
    for (const kw of ["model", "block", "param", "repeat", "return"])
      for (const s of scopesOf(toks, kw)) assert.equal(s, "keyword.control.tokr", `${f}: '${kw}'`);
  }
});
