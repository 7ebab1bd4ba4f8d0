import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { checkTokr } from "../../compiler/lang/check.js";
import { LangError, type LangDiagnostic } from "../../grammar/diagnostics.js";

/** mulberry32: a tiny seeded PRNG, so every run mutates the same way. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JUNK = ["$", "{", "}", "(", ")", "[", "]", "->", "@", '"', ",", ":", "=", "-", "*", "/", "\0", "💥"];
const JUNK_WORDS = ["repeat", "block", "model", "policy", "return", "param", "as", "x", "f32", "token"];
const NUMBERS = ["0", "-1", "-7", "99999999999", "1e308", "9007199254740993", "4294967297", "3.5", "1e-9"];

interface Span {
  readonly start: number;
  readonly end: number;
}

const spans = (src: string, re: RegExp): Span[] =>
  [...src.matchAll(re)].map((m) => ({ start: m.index, end: m.index + m[0].length }));

/** One random edit: token delete/duplicate/swap, char delete/insert, truncate, junk, odd numbers. */
function mutateOnce(src: string, rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const at = Math.floor(rnd() * (src.length + 1));
  const tokens = spans(src, /[A-Za-z_][\w.]*|\d+(\.\d+)?(e-?\d+)?|\S/g);
  const tok = tokens.length ? pick(tokens) : { start: 0, end: 0 };
  const splice = (s: Span, text: string): string => src.slice(0, s.start) + text + src.slice(s.end);
  switch (Math.floor(rnd() * 9)) {
    case 0:
      return splice(tok, "");
    case 1:
      return splice(tok, src.slice(tok.start, tok.end).repeat(2 + Math.floor(rnd() * 2)));
    case 2: {
      const i = tokens.indexOf(tok);
      const next = tokens[i + 1];
      if (!next) return splice(tok, "");
      const a = src.slice(tok.start, tok.end);
      const b = src.slice(next.start, next.end);
      return src.slice(0, tok.start) + b + src.slice(tok.end, next.start) + a + src.slice(next.end);
    }
    case 3:
      return src.slice(0, at) + src.slice(at + 1);
    case 4:
      return src.slice(0, at);
    case 5:
      return src.slice(0, at) + pick(JUNK) + src.slice(at);
    case 6:
      return src.slice(0, tok.start) + ` ${pick(JUNK_WORDS)} ` + src.slice(tok.start);
    case 7: {
      // A top-level constant (`dim = 8`) feeds every shape: the likeliest way to huge tensors.
      const consts = spans(src, /(?<=^\w+ = )\d+$/gm);
      return consts.length ? splice(pick(consts), pick(NUMBERS)) : src.slice(0, at);
    }
    default: {
      const nums = spans(src, /\d+(\.\d+)?/g);
      return nums.length ? splice(pick(nums), pick(NUMBERS)) : src.slice(0, at);
    }
  }
}

/** A diagnostic must point inside the file: a real line, a column at most one past its end. */
function assertInside(src: string, d: LangDiagnostic, what: string): void {
  const lines = src.split(/\r?\n/);
  assert.ok(
    Number.isInteger(d.pos.line) && d.pos.line >= 1 && d.pos.line <= lines.length,
    `${what}: line ${d.pos.line}`,
  );
  const len = lines[d.pos.line - 1].length;
  assert.ok(
    Number.isInteger(d.pos.col) && d.pos.col >= 1 && d.pos.col <= len + 1,
    `${what}: col ${d.pos.col} of ${len}`,
  );
  assert.equal(typeof d.message, "string");
  assert.ok(d.message.length > 0, `${what}: empty message`);
}

/** Mutants per example: the small programs and the policy files get most (the big models lower slowly). */
const PLAN: [string, number][] = [
  ["examples/tiny.tokr", 150],
  ["examples/fmnist-vit/vit.tokr", 25],
  ["examples/bert.tokr", 20],
  ["examples/gpt.tokr", 20],
  ["examples/vit-tiny.tokr", 5],
  ["examples/whisper.tokr", 5],
  ["examples/bert.policy.tokr", 20],
  ["examples/gpt.policy.tokr", 20],
  ["examples/vit-tiny.policy.tokr", 20],
  ["examples/whisper.policy.tokr", 15],
];

/** Seed of the first mutant; FUZZ_SEED explores others without editing the test. */
const SEED0 = Number(process.env.FUZZ_SEED ?? 0x70c4);

test("seeded mutants of every example give a graph or in-file diagnostics, none hangs", () => {
  let total = 0;
  let failing = 0;
  const problems: string[] = [];
  for (const [file, n] of PLAN) {
    const original = readFileSync(file, "utf8");
    for (let i = 0; i < n; i++) {
      const rnd = prng(SEED0 + total);
      let src = original;
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) src = mutateOnce(src, rnd);
      const what = `${file} mutant #${i} (seed ${SEED0 + total})`;
      total++;
      try {
        if (runOne(src, file, what)) failing++;
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
      }
    }
  }
  assert.deepEqual(problems.slice(0, 3), []);
  assert.equal(total, 300);
  // The mutations are meant to break programs: most mutants must be rejected, some may survive.
  assert.ok(failing > 150, `only ${failing} of ${total} mutants were rejected`);
});

/** Checks one mutant; true when it was rejected with diagnostics. */
function runOne(src: string, file: string, what: string): boolean {
  const t0 = performance.now();
  let diags: readonly LangDiagnostic[];
  try {
    // A valid policy-only file yields neither a graph nor a diagnostic, so either may be absent.
    diags = checkTokr(src, file).diagnostics;
  } catch (e) {
    if (!(e instanceof LangError)) {
      const err = e instanceof Error ? (e.stack ?? e.message).split("\n").slice(0, 6).join("\n") : String(e);
      assert.fail(`${what} threw a non-language error:\n${err}\n--- source ---\n${src}`);
    }
    diags = e.diagnostics;
  }
  const ms = performance.now() - t0;
  // A hang guard, not a speed target: shared CI machines are slow and noisy (a mutant took 6 s under load).
  assert.ok(ms < 30000, `${what} took ${ms.toFixed(0)} ms`);
  for (const d of diags) assertInside(src, d, what);
  return diags.length > 0;
}

test("crashes the fuzzer found are diagnostics: huge or negative dims, dim overflow, huge repeat counts", () => {
  const tiny = readFileSync("examples/tiny.tokr", "utf8");
  const first = (from: string, to: string): string => {
    const d = checkTokr(tiny.replace(from, to), "t.tokr").diagnostics[0];
    return `${d.pos.line}:${d.pos.col}: ${d.message}`;
  };
  // wqkv is f32[dim, 3 * dim] at 7:15: 1e11 * 3e11 elements, and -8 * -24.
  assert.equal(
    first("dim = 8", "dim = 100000000000"),
    "7:15: a seeded parameter holds at most 4194304 elements, this one 3e+22",
  );
  assert.equal(
    first("dim = 8", "dim = -8"),
    "7:15: parameter dims must be non-negative safe integers, got [-8, -24]",
  );
  assert.equal(
    first("repeat 2", "repeat 100000000"),
    "32:10: repeat unrolls more than 4096 iterations in all",
  );
});
