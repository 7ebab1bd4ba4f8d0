import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkOutput, FileCheckError } from "../filecheck.js";

const OUT = [
  "graph @g(%x: f32[4]) {", // 1
  "  %a = Relu(%x) : f32[4]", // 2
  "  %b = Exp(%a) : f32[4]", // 3
  "  %c = Add(%a, %b) : f32[4]", // 4
  "  return %c", // 5
  "}", // 6
  "graph @h(%y: f32[2]) {", // 7
  "  %d = Neg(%y) : f32[2]", // 8
  "  return %d", // 9
  "}", // 10
].join("\n");

/** Asserts a FileCheckError whose message contains every fragment. */
function fails(checks: string, ...fragments: string[]): void {
  assert.throws(
    () => checkOutput(OUT, checks),
    (e: unknown) => {
      assert.ok(e instanceof FileCheckError, `expected FileCheckError, got ${String(e)}`);
      for (const f of fragments) assert.ok(e.message.includes(f), `message lacks '${f}':\n${e.message}`);
      return true;
    },
  );
}

describe("filecheck: passing checks", () => {
  it("CHECK finds substrings in order, CHECK-NEXT on the following line", () => {
    checkOutput(
      OUT,
      "// CHECK: Relu(%x)\n// CHECK-NEXT: %b = Exp\n// CHECK-NEXT: Add(%a, %b)\n// CHECK: return %c",
    );
  });
  it("CHECK-SAME continues on the line of the previous match", () => {
    checkOutput(OUT, "CHECK: %c = Add\nCHECK-SAME: (%a, %b)\nCHECK-SAME: f32[4]");
  });
  it("CHECK-NOT passes when the string is absent between the neighbouring matches", () => {
    // Neg exists only after the first graph's return, so it is absent between Relu and return.
    checkOutput(OUT, "CHECK: Relu\nCHECK-NOT: Neg\nCHECK: return %c");
  });
  it("{{regex}} segments and flexible blanks", () => {
    checkOutput(OUT, "CHECK: %{{[a-z]+}} = Exp(%{{.}})\nCHECK: %c   =   Add");
  });
  it("CHECK-LABEL splits the output so checks stay within one graph", () => {
    checkOutput(OUT, "CHECK-LABEL: graph @g\nCHECK: return %c\nCHECK-LABEL: graph @h\nCHECK-NEXT: Neg(%y)");
  });
  it("regex metacharacters in literal text are literal", () => {
    checkOutput("y = a.b+c[0] (x)", "CHECK: a.b+c[0] (x)");
    fails("CHECK: R.lu", "expected string not found");
  });
});

describe("filecheck: failing checks", () => {
  it("missing string names the check line and shows the searched region", () => {
    fails(
      "// CHECK: Relu\n// CHECK: Sigmoid",
      "check:2: error: CHECK: expected string not found",
      "CHECK: Sigmoid",
      "lines 2-10",
      "    3 |   %b = Exp(%a) : f32[4]",
    );
  });
  it("CHECK does not look back before the previous match", () => {
    fails("CHECK: %b = Exp\nCHECK: %a = Relu", "check:2:", "expected string not found");
  });
  it("CHECK-NEXT fails when the match is two lines down", () => {
    fails(
      "CHECK: Relu\nCHECK-NEXT: Add",
      "check:2: error: CHECK-NEXT: expected string not found on the line after",
      "lines 3-3",
    );
  });
  it("CHECK-SAME fails when the string is on a later line", () => {
    fails("CHECK: Relu\nCHECK-SAME: Exp", "check:2: error: CHECK-SAME", "same line");
  });
  it("CHECK-NOT fails and marks the line where the excluded string is", () => {
    fails(
      "CHECK: Relu\nCHECK-NOT: Exp\nCHECK: Add",
      "check:2: error: CHECK-NOT: excluded string found",
      ">    3 |   %b = Exp",
    );
  });
  it("trailing CHECK-NOT covers the rest of the output", () => {
    fails("CHECK: Add\nCHECK-NOT: return", "excluded string found", ">    5 |   return %c");
  });
  it("checks after a label may not reach into the next label's region", () => {
    fails(
      "CHECK-LABEL: graph @g\nCHECK: Neg\nCHECK-LABEL: graph @h",
      "check:2:",
      "expected string not found",
      "lines 1-6",
    );
  });
  it("CHECK-NOT before a label is bounded by it, so it fails only inside the region", () => {
    checkOutput(OUT, "CHECK-LABEL: graph @g\nCHECK-NOT: Neg\nCHECK-LABEL: graph @h");
    fails("CHECK-LABEL: graph @g\nCHECK-NOT: Exp\nCHECK-LABEL: graph @h", "excluded string found");
  });
  it("a missing label fails", () => {
    fails("CHECK-LABEL: graph @zzz", "check:1: error: CHECK-LABEL: label not found");
  });
  it("unknown directives, empty patterns and no directives are errors", () => {
    fails("CHECK: Relu\nCHECK-NXT: Exp", "check:2: error: unknown directive 'CHECK-NXT:'");
    fails("CHECK:   ", "empty pattern");
    fails("no directives here", "no CHECK directives");
    fails("CHECK-NEXT: graph", "needs a match before it");
  });
  it("the file option prefixes messages", () => {
    assert.throws(
      () => checkOutput(OUT, "\n\nCHECK: Sigmoid", { file: "t.ir" }),
      /t\.ir:3: error: CHECK: expected string not found/,
    );
  });
});
