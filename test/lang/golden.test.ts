import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { compileTokr } from "../../compiler/lang/check.js";
import { printGraph } from "../../compiler/ir/text/printer.js";
import { parseAndVerify } from "../../compiler/ir/text/parser.js";
import { repoRoot } from "../util/helpers.js";

/** Regenerate: `UPDATE_GOLDEN=1 node --import tsx --test test/lang/golden.test.ts` (then review the diff). */
const dir = join(repoRoot, "test/lang/golden");

test("golden: mlp.tokr lowers to the checked-in IR text, which parses back", () => {
  const file = "test/lang/golden/mlp.tokr";
  const text = printGraph(compileTokr(readFileSync(join(dir, "mlp.tokr"), "utf8"), file));
  const golden = join(dir, "mlp.ir");
  if (process.env.UPDATE_GOLDEN) writeFileSync(golden, text);
  assert.equal(text, readFileSync(golden, "utf8"));
  assert.equal(printGraph(parseAndVerify(text)), text);
});
