/**
 * The WebGPU runtime in a browser (issue #5): a `tokr compile --target wgsl --portable` artifact
 * of examples/tiny.tokr (matmul, attention, layernorm, gelu) is served over HTTP with the esbuild
 * bundle of runtime/webgpu/browser.ts; headless Chromium loads it with fetch, runs it through the
 * same WebGpuRuntime/GpuProgram classes as Node, and its outputs are compared with the CPU
 * reference (`tokr run` of the .tokr file). Skips with the reason when Chromium is absent.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { main } from "../../compiler/cli/main.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { parseSafetensors, serializeSafetensors } from "../../runtime/safetensors.js";
import { buildBrowserBundle } from "../../scripts/build-browser.js";
import { assertClose, repoRoot, skipUnlessRequired } from "../util/helpers.js";
import { findChromium, type PageOutcome, runPage } from "./browser-harness.js";

const chromium = findChromium();
const skip = skipUnlessRequired(
  chromium ? false : "no Chromium on PATH (apt-get install chromium, or set TOKR_CHROMIUM)",
);

/** Two runs with different token counts, so the page also binds symbols from input shapes. */
const RUNS: [number, number][] = [
  [2, 5],
  [1, 3],
];

/** The page: plain JS against the bundle's exports only, as an application would use it. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>tokr browser test</title>
<script type="module">
const report = (path, body) => fetch(path, { method: "POST", body });
addEventListener("unhandledrejection", (e) => report("/error", "unhandled: " + e.reason));
try {
  const tokr = await import("/tokr-webgpu.js");
  const rt = await tokr.browserRuntime();
  const program = await rt.load(await tokr.loadProgramArtifactFromUrl("art/"));
  const out = new Map();
  for (let r = 0; r < ${RUNS.length}; r++) {
    const bytes = new Uint8Array(await (await fetch("in" + r + ".safetensors")).arrayBuffer());
    const res = await program.run(tokr.parseSafetensors(bytes, "in" + r + ".safetensors"));
    for (const [name, t] of res) out.set(r + "/" + name, t);
  }
  program.destroy();
  const meta = { adapter: rt.ctx.description, target: JSON.stringify(rt.target) };
  rt.destroy();
  await report("/result", tokr.serializeSafetensors(out, meta));
} catch (e) {
  await report("/error", (e && e.name ? e.name + ": " : "") + (e && e.message ? e.message : String(e)));
}
</script>
`;

/** Seeded inputs x: f32[B, N, 8] in [-1, 1). */
function input(b: number, n: number, seed: number): Tensor {
  let s = seed;
  const v = Array.from({ length: b * n * 8 }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31) * 2 - 1;
  });
  return makeTensor("f32", [b, n, 8], v);
}

describe("WebGPU in headless Chromium", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-browser-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs a compiled tiny transformer through the bundled runtime and matches the CPU reference", async (t) => {
    const log: string[] = [];
    const io = { stdout: (s: string) => void log.push(s), stderr: (s: string) => void log.push(s), cwd: dir };
    const model = join(repoRoot, "examples", "tiny.tokr");
    const code = await main(["compile", model, "--target", "wgsl", "--portable", "-o", "art"], io);
    assert.equal(code, 0, log.join(""));
    const files = new Map<string, Uint8Array | string>([["/tokr-webgpu.js", await buildBrowserBundle()]]);
    const expected = new Map<string, Tensor>();
    for (const [r, [b, n]] of RUNS.entries()) {
      const x = input(b, n, 17 + r);
      const bytes = serializeSafetensors(new Map([["x", x]]));
      files.set(`/in${r}.safetensors`, bytes);
      writeSafetensorsFile(join(dir, `in${r}.safetensors`), new Map([["x", x]]));
      const c = await main(["run", model, "--inputs", `in${r}.safetensors`, "-o", `cpu${r}.safetensors`], io);
      assert.equal(c, 0, log.join(""));
      for (const [name, v] of readSafetensorsFile(join(dir, `cpu${r}.safetensors`)))
        expected.set(`${r}/${name}`, v);
    }
    const out: PageOutcome = await runPage(chromium!, {
      html: PAGE,
      files,
      dirs: new Map([["/art/", join(dir, "art")]]),
      timeoutMs: 60_000,
    });
    if ("error" in out) {
      if (/^NoAdapterError/.test(out.error))
        return t.skip(skipUnlessRequired(`headless Chromium has no WebGPU adapter: ${out.error}`));
      assert.fail(`the page failed: ${out.error}`);
    }
    const got = parseSafetensors(out.result, "page result");
    t.diagnostic(`adapter: ${got.metadata.get("adapter") ?? "?"}`);
    assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
    for (const [name, e] of expected) assertClose(got.get(name)!, e, 1e-4, name);
  });
});
