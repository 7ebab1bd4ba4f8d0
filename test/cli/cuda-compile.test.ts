import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, test } from "node:test";
import type { CudaManifest } from "../../backends/cuda/program.js";
import { findNvcc } from "../../backends/cuda/toolchain.js";
import { main } from "../../compiler/cli/main.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { CUDA_ADDON_PATH } from "../../runtime/cuda/loader.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { serializeSafetensors } from "../../runtime/safetensors.js";
import { repoRoot, skipUnlessRequired } from "../util/helpers.js";

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
    assert.equal(m.format, "tokr-cuda-2");
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
    // `tokr run` loads it through runtime/cuda: no GPU here, so a clear error and exit 1, no crash.
    writeFileSync(
      join(dir, "x.safetensors"),
      serializeSafetensors(new Map([["x", makeTensor("f32", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8])]])),
    );
    const run = await tokr("run", "art", "--inputs", "x.safetensors");
    if (run.code === 0) return; // a machine with a CUDA device ran it
    assert.equal(run.code, 1);
    if (!existsSync(CUDA_ADDON_PATH)) assert.match(run.err, /addon is not built.*build-cuda\.js/);
    else
      assert.match(
        run.err,
        /^tokr: error: art: cannot run the CUDA artifact: no CUDA device.*; run it on a machine with an NVIDIA GPU .* or compile the model for another target/,
      );
    assert.equal(run.err.split("\n").filter(Boolean).length, 1, "one line, no stack");
    // As a process (the addon loaded for real): exit status 1 and the message, no signal, no crash.
    const cli = pathToFileURL(join(repoRoot, "compiler", "cli", "main.ts")).href;
    const proc = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const { main } = await import(${JSON.stringify(cli)}); process.exitCode = await main(process.argv.slice(1));`,
        "run",
        join(dir, "art"),
        "--inputs",
        join(dir, "x.safetensors"),
      ],
      { cwd: repoRoot, encoding: "utf8" },
    );
    assert.equal(proc.signal, null, proc.stderr);
    assert.equal(proc.status, 1, proc.stderr);
    assert.match(
      proc.stderr,
      /cannot run the CUDA artifact: (no CUDA device|the CUDA runtime addon is not built)/,
    );
    // Options that only make sense when compiling are refused before any device work.
    assert.match((await tokr("run", "art", "--f16")).err, /--f16 is chosen when compiling a cuda artifact/);
    assert.match(
      (await tokr("run", "art", "--target", "cpu")).err,
      /is a cuda artifact; it cannot run with --target cpu/,
    );
    assert.match(
      (await tokr("run", "mlp.ir", "--target", "cuda")).err,
      /--target cuda runs compiled cuda artifacts/,
    );
  },
);

test(
  "tokr compile --target cuda --bf16 stores f32 tensors as __nv_bfloat16",
  { skip: skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME to a CUDA 12+ toolkit)") },
  async () => {
    const r = await tokr("compile", "mlp.ir", "--target", "cuda", "--bf16", "-o", "art-bf16");
    assert.deepEqual(r, { code: 0, err: "" });
    const art = join(dir, "art-bf16");
    const m = JSON.parse(readFileSync(join(art, "manifest.json"), "utf8")) as CudaManifest;
    for (const b of m.buffers) assert.equal(b.storage, b.dtype === "f32" ? "bf16" : b.storage, b.name);
    assert.ok(m.buffers.some((b) => b.storage === "bf16"));
    assert.match(readFileSync(join(art, m.source), "utf8"), /const __nv_bfloat16\* /);
    // Weights stay f32 in the file (the runtime rounds them at upload, like inputs).
    const w = m.buffers.find((b) => b.kind === "constant")!;
    assert.equal(readSafetensorsFile(join(art, m.weights)).get(w.weight!)!.dtype, "f32");
  },
);

test(
  "tokr compile --target cuda --f16 converts the graph to f16 (__half storage, f32 signature)",
  { skip: skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME to a CUDA 12+ toolkit)") },
  async () => {
    const r = await tokr("compile", "mlp.ir", "--target", "cuda", "--f16", "-o", "art-f16");
    assert.deepEqual(r, { code: 0, err: "" });
    const m = JSON.parse(readFileSync(join(dir, "art-f16", "manifest.json"), "utf8")) as CudaManifest;
    assert.ok(m.buffers.some((b) => b.kind === "constant" && b.storage === "f16"));
    const io = [...m.inputs, ...m.outputs].map((id) => m.buffers[id]);
    assert.deepEqual(
      io.map((b) => [b.name, b.dtype, b.storage]),
      [
        ["x", "f32", "f32"],
        ["z", "f32", "f32"],
      ],
    );
  },
);

test("tokr compile --bf16 needs --target cuda; --f16 and --bf16 exclude each other", async () => {
  assert.match(
    (await tokr("compile", "mlp.ir", "--target", "wgsl", "--bf16", "-o", "a1")).err,
    /--bf16 needs --target cuda \(WGSL has no bf16 type\)/,
  );
  assert.match(
    (await tokr("compile", "mlp.ir", "--target", "cpu", "--bf16", "-o", "a2")).err,
    /--bf16 needs --target cuda/,
  );
  if (findNvcc())
    assert.match(
      (await tokr("compile", "mlp.ir", "--target", "cuda", "--bf16", "--f16", "-o", "a3")).err,
      /--f16 and --bf16 exclude each other/,
    );
});
