import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { printGraph } from "../../compiler/ir/text/printer.js";
import { parseGraph } from "../../compiler/ir/text/parser.js";
import { PassManager } from "../../passes/manager.js";
import { checkOutput } from "../filecheck.js";
import { repoRoot } from "../util/helpers.js";

// Pass tests as IR text (MLIR style): `// RUN: <pipeline>` on line 1, cases separated by
// `// -----`, CHECK lines matched against the printed graph after the pipeline. The files are
// read from the source tree, also when this test runs compiled from dist/.
const DIR = join(repoRoot, "test", "passes");

interface Case {
  /** 1-based line of the case's first line in the file. */
  readonly line: number;
  /** The case padded with blank lines, so parser and FileCheck line numbers are the file's. */
  readonly text: string;
}

function splitCases(src: string): { pipeline: string; cases: Case[] } {
  const lines = src.split("\n");
  const run = /^\/\/ RUN:(.*)$/.exec(lines[0]);
  if (!run) throw new Error("line 1 must be `// RUN: <pipeline>`");
  const cases: Case[] = [];
  let start = 1;
  const flush = (end: number): void => {
    const body = lines.slice(start, end);
    if (body.some((l) => l.trim() !== ""))
      cases.push({ line: start + 1, text: "\n".repeat(start) + body.join("\n") });
  };
  lines.forEach((l, i) => {
    if (i === 0 || l.trim() !== "// -----") return;
    flush(i);
    start = i + 1;
  });
  flush(lines.length);
  return { pipeline: run[1].trim(), cases };
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".ir"))
  .sort();

it("finds the pass test files", () => {
  for (const f of ["canonicalize.ir", "dce.ir", "fold-constants.ir", "shape-infer.ir"])
    assert.ok(files.includes(f), f);
});

for (const f of files) {
  const file = `test/passes/${f}`;
  const { pipeline, cases } = splitCases(readFileSync(join(DIR, f), "utf8"));
  describe(`${file} (${pipeline})`, () => {
    for (const c of cases) {
      it(`case at line ${c.line}`, () => {
        const g = parseGraph(c.text, file);
        new PassManager(pipeline, { verify: true }).run(g);
        checkOutput(printGraph(g), c.text, { file });
      });
    }
  });
}
