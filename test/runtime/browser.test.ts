/**
 * The WebGPU runtime in a browser (issue #5): a `tokr compile --target wgsl --portable` artifact is
 * served over HTTP with the esbuild bundle of runtime/webgpu/browser.ts; headless Chromium loads it
 * with fetch, runs it through the same WebGpuRuntime/GpuProgram classes as Node, and its outputs are
 * compared with the CPU reference (`tokr run`). Skips with the reason when Chromium is absent.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { main } from "../../compiler/cli/main.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { ArtifactError, loadProgramArtifact, loadProgramArtifactFromUrl } from "../../runtime/artifact.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../runtime/node-io.js";
import { parseSafetensors, serializeSafetensors } from "../../runtime/safetensors.js";
import { buildBrowserBundle } from "../../scripts/build-browser.js";
import { assertClose, repoRoot, skipUnlessRequired } from "../util/helpers.js";
import { findChromium, runPage, servePage } from "./browser-harness.js";

const chromium = findChromium();
const skip = skipUnlessRequired(
  chromium ? false : "no Chromium on PATH (apt-get install chromium, or set TOKR_CHROMIUM)",
);

/**
 * The page: plain JS against the bundle's exports only, as an application would use it. It runs the
 * artifact at `art/` once per `in<r>.safetensors` and POSTs every output (keyed `<r>/<name>`).
 */
function page(runs: number): string {
  return `<!doctype html>
<meta charset="utf-8">
<title>tokr browser test</title>
<script type="module">
const report = (path, body) => fetch(path, { method: "POST", body });
const t0 = performance.now();
const log = (what) => report("/log", what + " at " + Math.round(performance.now() - t0) + " ms");
addEventListener("unhandledrejection", (e) => report("/error", "unhandled: " + e.reason));
try {
  const tokr = await import("/tokr-webgpu.js");
  const rt = await tokr.browserRuntime();
  await log("adapter " + rt.ctx.description);
  rt.device.lost.then((i) => i.reason !== "destroyed" && log("device lost: " + i.message));
  rt.device.addEventListener("uncapturederror", (e) => log("uncaptured: " + e.error.message));
  const artifact = await tokr.loadProgramArtifactFromUrl("art/");
  await log("artifact fetched");
  const program = await rt.load(artifact);
  await log(artifact.kernels.length + " kernels compiled");
  const out = new Map();
  for (let r = 0; r < ${runs}; r++) {
    const bytes = new Uint8Array(await (await fetch("in" + r + ".safetensors")).arrayBuffer());
    const res = await program.run(tokr.parseSafetensors(bytes, "in" + r + ".safetensors"));
    await log("run " + r + " done");
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
}

interface Case {
  /** The model file (repository-relative) and extra `tokr compile`/`tokr run` arguments. */
  readonly model: string;
  readonly args: readonly string[];
  /** One input map per run. */
  readonly inputs: readonly ReadonlyMap<string, Tensor>[];
  readonly timeoutMs: number;
}

type Ctx = { skip(reason: string): void; diagnostic(msg: string): void };

/** Compiles, computes the CPU reference, runs the artifact in Chromium; returns the page's and CPU's outputs. */
async function compareInChromium(t: Ctx, dir: string, c: Case): Promise<void> {
  const log: string[] = [];
  const io = { stdout: (s: string) => void log.push(s), stderr: (s: string) => void log.push(s), cwd: dir };
  const model = join(repoRoot, c.model);
  const args = c.args.map((a) => (a.endsWith(".tokr") ? join(repoRoot, a) : a));
  const code = await main(["compile", model, "--target", "wgsl", "--portable", ...args, "-o", "art"], io);
  assert.equal(code, 0, log.join(""));
  const files = new Map<string, Uint8Array | string>([["/tokr-webgpu.js", await buildBrowserBundle()]]);
  const expected = new Map<string, Tensor>();
  for (const [r, inputs] of c.inputs.entries()) {
    files.set(`/in${r}.safetensors`, serializeSafetensors(inputs));
    writeSafetensorsFile(join(dir, `in${r}.safetensors`), inputs);
    const run = ["run", model, ...args, "--inputs", `in${r}.safetensors`, "-o", `cpu${r}.safetensors`];
    assert.equal(await main(run, io), 0, log.join(""));
    for (const [name, v] of readSafetensorsFile(join(dir, `cpu${r}.safetensors`)))
      expected.set(`${r}/${name}`, v);
  }
  const out = await runPage(chromium!, {
    html: page(c.inputs.length),
    files,
    dirs: new Map([["/art/", join(dir, "art")]]),
    timeoutMs: c.timeoutMs,
  });
  if ("error" in out) {
    if (/^NoAdapterError/.test(out.error))
      return t.skip(skipUnlessRequired(`headless Chromium has no WebGPU adapter: ${out.error}`));
    assert.fail(`the page failed: ${out.error}`);
  }
  const got = parseSafetensors(out.result, "page result");
  t.diagnostic(`adapter: ${got.metadata.get("adapter") ?? "?"}; the page logged: ${out.progress.join("; ")}`);
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
  for (const [name, e] of expected) assertClose(got.get(name)!, e, 1e-4, name);
}

/** Seeded x: f32[B, N, 8] in [-1, 1) for examples/tiny.tokr. */
function tinyInput(b: number, n: number, seed: number): ReadonlyMap<string, Tensor> {
  let s = seed;
  const v = Array.from({ length: b * n * 8 }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31) * 2 - 1;
  });
  return new Map([["x", makeTensor("f32", [b, n, 8], v)]]);
}

describe("WebGPU in headless Chromium", { skip }, () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "tokr-browser-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs a compiled tiny transformer through the bundled runtime and matches the CPU reference", (t) =>
    // Two runs with different token counts: the page also binds symbols from input shapes.
    compareInChromium(t, dir, {
      model: "examples/tiny.tokr",
      args: [],
      inputs: [tinyInput(2, 5, 17), tinyInput(1, 3, 18)],
      timeoutMs: 60_000,
    }));

  it(
    "runs the Fashion-MNIST ViT with ToMe merging on one image and matches the CPU reference",
    {
      skip:
        process.env.TOKR_BROWSER_VIT !== "1" &&
        "slow (~30-40 s compiling ~120 pipelines on SwiftShader): set TOKR_BROWSER_VIT=1",
    },
    async (t) => {
      const images = readIdxImages(join(repoRoot, "examples", "fmnist-vit", "t500-images-idx3-ubyte.gz"));
      await compareInChromium(t, dir, {
        model: "examples/fmnist-vit/vit_fmnist_opset17.onnx",
        args: ["--policy", "bench/policies/tome-sched-48-4.tokr"],
        inputs: [new Map([["pixels", fmnistBatch(images, 0, 1)]])],
        timeoutMs: 300_000,
      });
    },
  );
});

describe("artifact loading over HTTP (fetchFiles)", () => {
  it("loads the same program through fetch as from the directory, and names the URL of a missing file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-fetch-"));
    const io = { stdout: () => {}, stderr: () => {}, cwd: dir };
    const model = join(repoRoot, "examples", "tiny.tokr");
    assert.equal(await main(["compile", model, "--target", "wgsl", "--portable", "-o", "art"], io), 0);
    const server = await servePage({
      html: "",
      files: new Map(),
      dirs: new Map([["/art/", join(dir, "art")]]),
    });
    try {
      const fromDir = await loadProgramArtifact((n) => readFile(join(dir, "art", n)), "art");
      const fromUrl = await loadProgramArtifactFromUrl(`${server.url}art`);
      assert.deepEqual(fromUrl, fromDir);
      assert.ok(fromUrl.kernels.length > 0);
      // The kernel sources are the files' bytes.
      const k0 = JSON.parse(readFileSync(join(dir, "art", "manifest.json"), "utf8")) as {
        program: { kernels: { file: string }[] };
      };
      assert.equal(
        fromUrl.kernels[0].source,
        readFileSync(join(dir, "art", k0.program.kernels[0].file), "utf8"),
      );
      const missing = `${server.url}nope/manifest.json`;
      await assert.rejects(loadProgramArtifactFromUrl(`${server.url}nope/`), (e: unknown) => {
        assert.ok(e instanceof ArtifactError);
        assert.equal(e.message, `${missing}: cannot read: GET ${missing}: HTTP 404 Not Found`);
        return true;
      });
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
