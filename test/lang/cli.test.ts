import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { assertClose, t } from "../util/helpers.js";

let dir = "";

async function tokr(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: dir });
  return { code, out, err };
}

const GOOD = "model double(x: f32[B, 2]) -> (y) {\n  y = x * 2.0\n}\n";
const BAD = "model m(x: f32[2]) -> (y) {\n  a = rleu(x)\n  y = x + nope\n}\n";

describe("tokr CLI with .tokr inputs", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-lang-"));
    writeFileSync(join(dir, "good.tokr"), GOOD);
    writeFileSync(join(dir, "bad.tokr"), BAD);
    writeSafetensorsFile(join(dir, "in.safetensors"), new Map([["x", t("f32", [1, 2], [1.5, -3])]]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("check: a valid program prints nothing and exits 0", async () => {
    assert.deepEqual(await tokr("check", "good.tokr"), { code: 0, out: "", err: "" });
  });

  it("check: every diagnostic with source line, caret and hint; exit 1", async () => {
    const r = await tokr("check", "bad.tokr");
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      [
        "bad.tokr:2:7: error: unknown op or block 'rleu'",
        "      a = rleu(x)",
        "          ^^^^",
        "  hint: did you mean `relu`?",
        "bad.tokr:3:11: error: unknown name 'nope'",
        "      y = x + nope",
        "              ^^^^",
        "",
      ].join("\n"),
    );
  });

  it("run and print take .tokr inputs", async () => {
    const r = await tokr("run", "good.tokr", "--inputs", "in.safetensors", "-o", "out.safetensors");
    assert.equal(r.code, 0, r.err);
    assertClose(readSafetensorsFile(join(dir, "out.safetensors")).get("y")!, t("f32", [1, 2], [3, -6]));
    const p = await tokr("print", "good.tokr");
    assert.equal(p.code, 0, p.err);
    assert.match(p.out, /^graph @double\(%x: f32\[B, 2\]\) \{/);
    assert.match(p.out, /Mul\(%x, %\d+\) loc\("good\.tokr":2:7\)/);
  });
});
