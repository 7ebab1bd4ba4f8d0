import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { CudaManifest } from "../../backends/cuda/program.js";
import { findNvcc } from "../../backends/cuda/toolchain.js";
import { main } from "../../compiler/cli/main.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { skipUnlessRequired } from "../util/helpers.js";

// `tokr compile --target cuda -o DIR`: the artifact when nvcc is there, a clear error when not.

const IR = `graph @mlp(%x: f32[T, 4]) {
  sym T
  const %w: f32[4, 3] = dense<[1, 0, -1, 0.5, 2, 1, 0, 0, 3, -2, 1, 1]>
  %y = MatMul(%x, %w) : f32[T, 3]
  %z = Relu(%y) : f32[T, 3]
  return %z
}
`;

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "tokr-cli-cuda-"));
  writeFileSync(join(dir, "mlp.ir"), IR);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function tokr(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const code = await main(argv, { stdout: () => undefined, stderr: (s) => void (err += s), cwd: dir });
  return { code, err };
}

test("tokr compile --target cuda without nvcc names what is missing", async () => {
  const saved = process.env.CUDA_HOME;
  process.env.CUDA_HOME = join(dir, "no-cuda");
  try {
    const r = await tokr("compile", "mlp.ir", "--target", "cuda", "-o", "art-none");
    assert.equal(r.code, 1);
    assert.match(r.err, /--target cuda needs nvcc: none at .*no-cuda\/bin\/nvcc.*CUDA_HOME/);
    assert.ok(!existsSync(join(dir, "art-none")), "nothing written");
  } finally {
    if (saved === undefined) delete process.env.CUDA_HOME;
    else process.env.CUDA_HOME = saved;
  }
});

test(
  "tokr compile --target cuda writes .cu, fatbin, resources, weights and manifest",
  { skip: skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME to a CUDA 12+ toolkit)") },
  async () => {
    const r = await tokr("compile", "mlp.ir", "--target", "cuda", "-o", "art");
    assert.deepEqual(r, { code: 0, err: "" });
    const art = join(dir, "art");
    const m = JSON.parse(readFileSync(join(art, "manifest.json"), "utf8")) as CudaManifest;
    assert.equal(m.format, "tokr-cuda-1");
    assert.equal(m.target, "cuda");
    assert.ok(m.fatbin && existsSync(join(art, m.fatbin)));
    assert.match(readFileSync(join(art, m.source), "utf8"), /__global__ void __launch_bounds__/);
    const res = JSON.parse(readFileSync(join(art, "resources.json"), "utf8")) as { arch: string }[];
    assert.deepEqual([...new Set(res.map((x) => x.arch))].sort(), ["sm_80", "sm_90"]);
    const w = m.buffers.find((b) => b.kind === "constant")!;
    assert.deepEqual(
      Array.from(readSafetensorsFile(join(art, m.weights)).get(w.weight!)!.data).slice(0, 3),
      [1, 0, -1],
    );
    // Running it is not wired into `tokr run` yet: the message says so.
    const run = await tokr("run", "art");
    assert.equal(run.code, 1);
    assert.match(run.err, /cuda artifact|CUDA/);
  },
);
