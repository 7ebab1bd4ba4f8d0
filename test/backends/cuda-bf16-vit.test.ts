import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator } from "../../backends/cuda/cpu.js";
import { compileFatbinAsync } from "../../backends/cuda/nvcc.js";
import { compileCudaProgram, emulateProgram } from "../../backends/cuda/program.js";
import { CUDA_BF16_TARGET } from "../../backends/cuda/target.js";
import { findNvcc, missingTools } from "../../backends/cuda/toolchain.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit } from "../../examples/fmnist-vit/vit-ir.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { repoRoot, skipUnlessRequired } from "../util/helpers.js";

// The Fashion-MNIST ViT with --bf16 (f32 tensors stored and computed as bf16, f32 accumulation):
// nvcc builds it for sm_80/sm_90, and the same .cu emulated on the CPU (both thread orders) predicts
// the classes the f32 reference predicts. (Emulated vs interpreted bf16 is checked per op in
// cuda-bf16.test.ts; the KIR interpreter is too slow for the whole ViT here.)

const ex = join(repoRoot, "examples", "fmnist-vit");
const missing = missingTools().filter((m) => m.startsWith("g++"));
const skipEmu = skipUnlessRequired(missing.length ? `needs g++: ${missing.join("; ")}` : false);
const skipNvcc = skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME)");
const IMAGES = 3;

test(
  "cuda bf16: Fashion-MNIST ViT builds with nvcc and, emulated, predicts like f32",
  { skip: skipEmu },
  async () => {
    const g = buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
    const p = buildProgram(g, CUDA_BF16_TARGET);
    assert.ok(
      p.buffers.some((b) => b.kind === "constant" && b.storage === "bf16"),
      "weights stored as bf16",
    );
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-bf16-vit-"));
    try {
      const a = compileCudaProgram(p, dir, { nvcc: false });
      const fatbin = skipNvcc ? undefined : compileFatbinAsync(a.cu);
      try {
        const emu = buildEmulator(readFileSync(a.cu, "utf8"));
        const feeds = new Map([
          ["pixels", fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, IMAGES)],
        ]);
        const want = runGraph(g, feeds).get("logits")!;
        let maxDiff = 0;
        for (const order of ["forward", "reverse"] as const) {
          const got = emulateProgram(emu, p, feeds, order).get("logits")!;
          assert.deepEqual(argmaxRows(got), argmaxRows(want), `top-1 (${order})`);
          for (let i = 0; i < want.data.length; i++)
            maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - want.data[i]));
        }
        // bf16 keeps ~3 significant digits: logits move, but not by a class margin.
        assert.ok(maxDiff > 0, "bf16 must differ from f32 somewhere (else it did not run in bf16)");
        assert.ok(maxDiff < 0.5, `bf16 logits within 0.5 of f32 (max |diff| ${maxDiff})`);
        console.log(`# bf16 ViT: ${IMAGES} images, top-1 as f32, max |logit diff| ${maxDiff.toFixed(4)}`);
      } finally {
        const r = await fatbin;
        if (r) {
          assert.equal(r.resources.length, 2 * p.kernels.length, "ptxas report per kernel and architecture");
          console.log(`# nvcc: bf16 ViT, ${p.kernels.length} kernels, ${r.seconds.toFixed(1)} s`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
