import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot, t } from "../util/helpers.js";
import { mismatch, readTensorFile, runCase } from "./conformance.js";

/** Debian's libonnx-testdata (scripts/setup-debian.sh installs it). */
const DATA = "/usr/share/libonnx-testdata/data/node";
/** Read from the source tree (tests also run compiled from dist/, which has no JSON). */
const EXCLUSIONS = join(repoRoot, "test/onnx/conformance-exclusions.json");
const MIN_PASS_RATE = 0.95;
const skip = existsSync(DATA) ? false : `${DATA} is absent (apt-get install libonnx-testdata)`;

test("mismatch: dtype and shape exact, f32 within 1e-4 abs+rel, integers exact", () => {
  const f = (v: number[]) => t("f32", [2], v);
  assert.equal(mismatch(f([1, 100]), f([1.00009, 100.009])), undefined);
  assert.equal(mismatch(f([1, 100]), f([1, 100.5])), "element 1 is 100, expected 100.5");
  assert.equal(mismatch(f([NaN, 0]), f([NaN, 0])), undefined);
  assert.equal(mismatch(t("i64", [1], [3]), t("i64", [1], [4])), "element 0 is 3, expected 4");
  assert.equal(mismatch(f([1, 2]), t("f64", [2], [1, 2])), "dtype f32, expected f64");
  assert.equal(mismatch(f([1, 2]), t("f32", [1, 2], [1, 2])), "shape [2], expected [1,2]");
});

test("readTensorFile decodes a serialized TensorProto (test_abs input: f32[3,4,5])", { skip }, () => {
  const { name, tensor } = readTensorFile(join(DATA, "test_abs/test_data_set_0/input_0.pb"));
  assert.equal(name, "x");
  assert.equal(tensor.dtype, "f32");
  assert.deepEqual(tensor.shape, [3, 4, 5]);
  const out = readTensorFile(join(DATA, "test_abs/test_data_set_0/output_0.pb")).tensor;
  assert.deepEqual([...out.data], [...tensor.data].map(Math.abs));
});

test("ONNX node conformance on the CPU interpreter", { skip }, () => {
  const excluded = JSON.parse(readFileSync(EXCLUSIONS, "utf8")) as Record<string, string>;
  const cases = readdirSync(DATA).sort();
  const problems: string[] = [];
  let [passed, supported, unsupported, excl, staticInputs] = [0, 0, 0, 0, 0];
  for (const name of cases) {
    const r = runCase(join(DATA, name));
    if (r.kind === "unsupported") {
      unsupported++;
      continue;
    }
    supported++;
    const reason = excluded[name];
    if (r.kind === "pass") {
      passed++;
      if (r.staticInputs) staticInputs++;
      if (reason !== undefined)
        problems.push(`${name}: passes now; remove its stale exclusion ("${reason}")`);
    } else if (reason !== undefined) excl++;
    else problems.push(`${name}: ${r.why}`);
  }
  const unknown = Object.keys(excluded).filter((n) => !cases.includes(n));
  for (const n of unknown) problems.push(`${n}: excluded but no such case`);
  const pct = supported ? (100 * passed) / supported : 0;
  console.log(
    `conformance: ${passed} passed of ${supported} supported cases (${pct.toFixed(1)}%), ${unsupported} unsupported, ${excl} excluded`,
  );
  console.log(
    `conformance: ${staticInputs} passing case(s) bound their inputs as constants (shape operands)`,
  );
  assert.deepEqual(problems, [], `conformance problems:\n${problems.join("\n")}`);
  assert.ok(passed / supported >= MIN_PASS_RATE, `pass rate ${pct.toFixed(1)}% is under 95%`);
});
