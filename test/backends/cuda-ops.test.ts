import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { lowerCtx, lowerNode } from "../../compiler/kir/lower.js";
import type { Kernel, Lowering } from "../../compiler/kir/types.js";
import { type CudaEmulator, buildEmulator } from "../../backends/cuda/cpu.js";
import { emulateLowering } from "../../backends/cuda/emulate.js";
import { compileFatbin } from "../../backends/cuda/nvcc.js";
import { renderModule } from "../../backends/cuda/render.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { findNvcc, missingTools } from "../../backends/cuda/toolchain.js";
import { ALL_CASES } from "./cases/index.js";
import { type Prepared, compare, prepare } from "./cases/run.js";
import { skipUnlessRequired } from "../util/helpers.js";

// Every backend op case: lowered for the CUDA target, all kernels rendered into one .cu, compiled
// with nvcc (the gate) and with g++ + cuda_cpu.h, run under both thread orders, compared with the
// op's reference.

const gxx = missingTools().filter((m) => m.startsWith("g++"));
const skipEmu = skipUnlessRequired(gxx.length ? `needs g++: ${gxx.join("; ")}` : false);
const skipNvcc = skipUnlessRequired(
  findNvcc() ? false : "nvcc not found (set CUDA_HOME to a CUDA 13 toolkit)",
);
if (skipEmu) console.log(`# skipping emulated CUDA op cases: ${skipEmu}`);
if (skipNvcc) console.log(`# skipping nvcc op gate: ${skipNvcc}`);

interface Lowered {
  readonly p: Prepared;
  readonly lowering: Lowering;
}

/** Kernel names get a per-case prefix so every case's kernels share one translation unit. */
function lowerAll(): { lowered: Lowered[]; kernels: Kernel[] } {
  const kernels: Kernel[] = [];
  const lowered = ALL_CASES.map((c, i) => {
    const p = prepare(c);
    const name = `c${i}_${p.def.name.replace(/[^A-Za-z0-9_]/g, "_").toLowerCase()}`;
    const raw = lowerNode(p.def, lowerCtx(p.def, name, c.attrs ?? {}, p.inTypes, p.outTypes, CUDA_TARGET));
    const renamed = new Map<Kernel, Kernel>();
    const launches = raw.launches.map((l) => {
      let k = renamed.get(l.kernel);
      if (!k) {
        k = { ...l.kernel, name: `c${i}_${l.kernel.name}` };
        if (!kernels.some((x) => x.name === k!.name)) kernels.push(k);
        renamed.set(l.kernel, k);
      }
      return { ...l, kernel: k };
    });
    return { p, lowering: { ...raw, launches } };
  });
  return { lowered, kernels };
}

const all = lowerAll();
const source = renderModule(all.kernels, "backend op cases").source;
let emu: CudaEmulator | undefined;

test(
  `cuda ops: nvcc compiles the ${all.kernels.length} kernels of ${ALL_CASES.length} op cases`,
  { skip: skipNvcc },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-ops-"));
    try {
      const r = compileFatbin(source, dir, "ops");
      const entries = new Set(r.resources.map((u) => `${u.entry}@${u.arch}`));
      for (const k of all.kernels)
        for (const a of ["sm_80", "sm_90"]) assert.ok(entries.has(`tokr_${k.name}@${a}`), `${k.name} ${a}`);
      console.log(`# nvcc: ${all.kernels.length} kernels in ${r.seconds.toFixed(1)} s`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

ALL_CASES.forEach((c, i) => {
  test(`cuda emu: ${c.name}`, { skip: skipEmu }, () => {
    emu ??= buildEmulator(source);
    const { p, lowering } = all.lowered[i];
    for (const order of ["forward", "reverse"] as const) {
      const got = emulateLowering(emu, lowering, c.inputs, p.outTypes, c.env ?? {}, CUDA_TARGET, order);
      assert.deepEqual(compare(c, got, p.want), [], order);
    }
  });
});
