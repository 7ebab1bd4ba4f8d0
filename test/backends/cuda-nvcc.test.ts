import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KernelBuilder } from "../../compiler/kir/builder.js";
import * as E from "../../compiler/kir/expr.js";
import { compileFatbin, parsePtxasInfo } from "../../backends/cuda/nvcc.js";
import { renderModule } from "../../backends/cuda/render.js";
import { CudaToolError, findNvcc } from "../../backends/cuda/toolchain.js";
import * as K from "./cuda-kernels.js";
import { skipUnlessRequired } from "../util/helpers.js";

// The nvcc gate: generated CUDA compiles for sm_80 and sm_90 with warnings as errors, and ptxas's
// resource report is parsed per kernel and architecture.

const skip = skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME to a CUDA 13 toolkit)");
if (skip) console.log(`# skipping nvcc tests: ${skip}`);

test("cuda nvcc: ptxas -v report parsing", () => {
  const log = [
    "ptxas info    : 0 bytes gmem",
    "ptxas info    : Compiling entry function 'tokr_a' for 'sm_80'",
    "ptxas info    : Function properties for tokr_a",
    "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads",
    "ptxas info    : Used 12 registers, used 1 barriers, 256 bytes smem, 368 bytes cmem[0]",
    "ptxas info    : Compiling entry function 'tokr_b' for 'sm_90'",
    "ptxas info    : Function properties for tokr_b",
    "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads",
    "ptxas info    : Used 9 registers",
  ].join("\n");
  assert.deepEqual(parsePtxasInfo(log), [
    {
      entry: "tokr_a",
      arch: "sm_80",
      registers: 12,
      barriers: 1,
      sharedBytes: 256,
      stackBytes: 8,
      spillStores: 4,
      spillLoads: 4,
    },
    {
      entry: "tokr_b",
      arch: "sm_90",
      registers: 9,
      barriers: 0,
      sharedBytes: 0,
      stackBytes: 0,
      spillStores: 0,
      spillLoads: 0,
    },
  ]);
});

test("cuda nvcc: hand-written kernels build a sm_80/sm_90 fatbin with resource usage", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tokr-nvcc-"));
  try {
    const kernels = [
      K.treeSum("tree_sum"),
      K.warpReduce("warp_reduce"),
      K.transpose("transpose"),
      K.halfOps("half_ops"),
      K.allPrims("all_prims"),
    ];
    const mod = renderModule(kernels, "nvcc test");
    const r = compileFatbin(mod.source, dir, "hand");
    assert.ok(readFileSync(r.fatbinPath).length > 1000);
    for (const k of mod.kernels)
      for (const arch of ["sm_80", "sm_90"]) {
        const u = r.resources.find((x) => x.entry === k.entry && x.arch === arch);
        assert.ok(u, `no ptxas report for ${k.entry} on ${arch}`);
        assert.ok(u.registers > 0);
      }
    const tree = r.resources.find((x) => x.entry === "tokr_tree_sum" && x.arch === "sm_90")!;
    assert.equal(tree.sharedBytes, 256);
    assert.equal(tree.barriers, 1);
    console.log(`# nvcc: ${kernels.length} kernels, 2 archs in ${r.seconds.toFixed(2)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("cuda nvcc: too much shared memory is a ptxas error", { skip }, () => {
  const kb = new KernelBuilder("huge", [32, 1, 1]);
  const y = kb.buffer("y", "f32", "read_write");
  const big = kb.array("big", "f32", 64 * 1024, "workgroup");
  const i = kb.let("i", E.builtin("local_id", 0));
  kb.store(big, i, E.f32(1));
  kb.barrier();
  kb.store(y, i, kb.load(big, E.sub(31, i)));
  const dir = mkdtempSync(join(tmpdir(), "tokr-nvcc-"));
  try {
    assert.throws(
      () => compileFatbin(renderModule([kb.build()]).source, dir, "huge"),
      (e: unknown) => e instanceof CudaToolError && /too much shared data/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
