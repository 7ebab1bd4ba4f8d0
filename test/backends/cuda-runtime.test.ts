import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RunError, runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator, type CudaEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, type CudaManifest } from "../../backends/cuda/program.js";
import { CUDA_BF16_TARGET, CUDA_TARGET } from "../../backends/cuda/target.js";
import { findGxx } from "../../backends/cuda/toolchain.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit, FMNIST_VIT } from "../../examples/fmnist-vit/vit-ir.js";
import { CUDA_ADDON_PATH, type CudaAddon, type DeviceHandle } from "../../runtime/cuda/loader.js";
import {
  type CudaArtifactFiles,
  CudaProgram,
  type CudaState,
  CudaStateError,
} from "../../runtime/cuda/program.js";
import { CudaRuntime } from "../../runtime/cuda/runtime.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { parseSafetensors } from "../../runtime/safetensors.js";
import type { ProgramRunner } from "../../runtime/types.js";
import type { GpuProgram } from "../../runtime/webgpu/program.js";
import { assertClose, repoRoot, t as tensor, skipUnlessRequired } from "../util/helpers.js";
import { rand } from "./cases/types.js";

// runtime/cuda's CudaProgram: with no GPU here, its replay logic (symbol binding, liveness-planned
// buffers, constants, launches in step order, readback) runs against an addon double whose
// launches execute the artifact's .cu on the CPU emulator; the real addon must refuse cleanly.

const skipEmu = skipUnlessRequired(findGxx() ? false : "needs g++ for the CUDA CPU emulation");

// Both runtimes' loaded programs satisfy the shared interface (a compile-time check).
const sameInterface: [GpuProgram, CudaProgram] extends [ProgramRunner, ProgramRunner] ? true : never = true;
void sameInterface;

/** x[T,8] @ w + b, Relu, @ w2, Softmax: three steps, buffers reused by liveness. */
function mlp(): Graph {
  const b = new GraphBuilder("mlp");
  b.symbol("T");
  const x = b.input("x", "f32", [sym("T"), 8]);
  const w = b.constant(tensor("f32", [8, 16], rand(21, 128)), "w");
  const bias = b.constant(tensor("f32", [16], rand(22, 16)), "bias");
  const w2 = b.constant(tensor("f32", [16, 5], rand(23, 80)), "w2");
  const h = b.op("Relu", [b.op("Add", [b.op("MatMul", [x, w]), bias])]);
  return b.output(b.op("Softmax", [b.op("MatMul", [h, w2])], { axis: -1 }));
}

/** A CudaAddon whose device memory is host bytes (0xFF when fresh) and whose launches run emulated. */
class EmulatedAddon implements CudaAddon {
  readonly mem = new Map<DeviceHandle, Uint8Array>();
  launches = 0;
  constructor(private readonly emu: CudaEmulator) {}
  runtimeVersion(): number {
    return 12080;
  }
  deviceCount(): number {
    return 1;
  }
  deviceName(): string {
    return "emulated";
  }
  alloc(bytes: number): DeviceHandle {
    const h = {};
    this.mem.set(h, new Uint8Array(bytes).fill(0xff));
    return h;
  }
  free(p: DeviceHandle): void {
    assert.ok(this.mem.delete(p), "double free");
  }
  upload(p: DeviceHandle, data: Uint8Array): void {
    this.mem.get(p)!.set(data);
  }
  download(p: DeviceHandle, bytes: number): Uint8Array {
    return this.mem.get(p)!.slice(0, bytes);
  }
  loadModule(): DeviceHandle {
    return {};
  }
  launch(
    _module: DeviceHandle,
    entry: string,
    grid: readonly [number, number, number],
    _block: readonly [number, number, number],
    buffers: readonly DeviceHandle[],
    symbols: readonly number[],
  ): void {
    this.launches++;
    const handles = [...new Set(buffers)];
    const bufs = handles.map((h, id) => ({ id, bytes: this.mem.get(h)!.length, data: this.mem.get(h)! }));
    const args = buffers.map((h) => handles.indexOf(h));
    const kernel = entry.replace(/^tokr_/, "");
    const got = this.emu.run(
      bufs,
      [{ kernel, grid, symbols, args }],
      bufs.map((b) => b.id),
    );
    handles.forEach((h, id) => this.mem.get(h)!.set(got.get(id)!));
  }
  synchronize(): void {}
}

/** Compiles `g` for CUDA (no nvcc: the double ignores the fatbin) and reads the artifact back. */
function artifact(g: Graph, dir: string): { files: CudaArtifactFiles; emu: CudaEmulator } {
  const a = compileCudaProgram(buildProgram(g, CUDA_TARGET), dir, { nvcc: false });
  const manifest = JSON.parse(readFileSync(a.manifest, "utf8")) as CudaManifest;
  const weights = parseSafetensors(new Uint8Array(readFileSync(a.weights)), a.weights);
  return {
    files: { manifest, fatbin: new Uint8Array(0), weights },
    emu: buildEmulator(readFileSync(a.cu, "utf8")),
  };
}

test(
  "cuda runtime: CudaProgram replays an MLP (symbolic T, several runs) like runGraph",
  { skip: skipEmu },
  async () => {
    const g = mlp();
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      const { files, emu } = artifact(g, dir);
      const addon = new EmulatedAddon(emu);
      const p = CudaProgram.load(files, addon);
      const constants = addon.mem.size;
      assert.equal(constants, 3, "w, bias, w2 uploaded once");
      for (const T of [3, 40, 1]) {
        const feeds = new Map([["x", tensor("f32", [T, 8], rand(T + 7, T * 8))]]);
        const [[name, want]] = [...runGraph(g, feeds)];
        const got = await p.run(feeds);
        assertClose(got.get(name)!, want, 1e-5, `T=${T}`);
      }
      assert.equal(addon.launches, 3 * files.manifest.steps.length);
      await assert.rejects(p.run(new Map([["x", tensor("f32", [2, 7], rand(1, 14))]])), /dimension|shape|x/);
      p.destroy();
      assert.equal(addon.mem.size, 0, "destroy frees every allocation");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "cuda runtime: CudaProgram runs a 2-block Fashion-MNIST ViT (planned buffers) like runGraph",
  { skip: skipEmu },
  async () => {
    const ex = join(repoRoot, "examples", "fmnist-vit");
    const g = buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")), { ...FMNIST_VIT, layers: 2 });
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      const { files, emu } = artifact(g, dir);
      const addon = new EmulatedAddon(emu);
      const p = CudaProgram.load(files, addon);
      const feeds = new Map([
        ["pixels", fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, 2)],
      ]);
      const want = runGraph(g, feeds).get("logits")!;
      const got = (await p.run(feeds)).get("logits")!;
      assertClose(got, want, 1e-3, "logits");
      assert.deepEqual(argmaxRows(got), argmaxRows(want));
      const consts = files.manifest.buffers.filter((b) => b.kind === "constant" && b.aliasOf === undefined);
      const others = files.manifest.buffers.filter((b) => b.kind !== "constant" && b.aliasOf === undefined);
      const slots = addon.mem.size - consts.length;
      assert.ok(slots < others.length / 4, `${slots} device buffers for ${others.length} program buffers`);
      p.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  "cuda runtime: without a GPU, loading a program fails with ERR_NO_CUDA_DEVICE (no crash)",
  {
    skip: existsSync(CUDA_ADDON_PATH)
      ? skipEmu
      : `addon not built (${CUDA_ADDON_PATH}): node scripts/build-cuda.js`,
  },
  (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      const { files } = artifact(mlp(), dir);
      let p: CudaProgram | undefined;
      try {
        p = CudaProgram.load(files);
      } catch (e) {
        const err = e as Error & { code?: string };
        assert.equal(err.code, "ERR_NO_CUDA_DEVICE", err.message);
        assert.match(err.message, /no CUDA device/);
        return;
      }
      p.destroy();
      t.skip("a CUDA device is present: this test checks the no-device path");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

/** y = acc + x over [4]: a running sum when y is written into the state read as acc next run. */
function accumulate(): Graph {
  const b = new GraphBuilder("accumulate");
  const acc = b.input("acc", "f32", [4]);
  const x = b.input("x", "f32", [4]);
  return b.output(b.op("Add", [acc, x], {}, { names: ["y"] }));
}

test(
  "cuda runtime: state buffers persist across runs and programs (inputs from states, outputsTo)",
  { skip: skipEmu },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    const dir2 = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      const { files, emu } = artifact(accumulate(), dir);
      const addon = new EmulatedAddon(emu);
      const rt = new CudaRuntime(addon);
      const p = rt.load(files);
      const a = rt.createState("a", "f32", [4]);
      const b = rt.createState("b", "f32", [4]);
      rt.writeState("a", tensor("f32", [4], [1, 2, 3, 4]));
      const x = tensor("f32", [4], [10, 20, 30, 40]);
      // Ping-pong: each run reads one state and writes the other; redirected outputs are not returned.
      const states = [a, b];
      for (let r = 0; r < 3; r++) {
        const out = await p.run(
          new Map<string, Tensor | CudaState>([
            ["acc", states[r % 2]],
            ["x", x],
          ]),
          {
            outputsTo: new Map([["y", states[(r + 1) % 2]]]),
          },
        );
        assert.equal(out.size, 0);
      }
      assert.deepEqual(Array.from((await rt.readState("b")).data), [31, 62, 93, 124]);
      // Another program's runs (its own liveness-planned memory) leave the states alone.
      const other = artifact(mlp(), dir2);
      const q = CudaProgram.load(other.files, new EmulatedAddon(other.emu));
      await q.run(new Map([["x", tensor("f32", [5, 8], rand(3, 40))]]));
      q.destroy();
      // A state input with a host-read output: plain outputs still come back.
      const out = await p.run(
        new Map<string, Tensor | CudaState>([
          ["acc", b],
          ["x", x],
        ]),
      );
      assert.deepEqual(Array.from(out.get("y")!.data), [41, 82, 123, 164]);
      assert.deepEqual(
        Array.from((await rt.readState("b")).data),
        [31, 62, 93, 124],
        "inputs are not written",
      );
      // Bindings are checked: shape, dtype, storage, output names.
      const small = rt.createState("small", "f32", [3]);
      await assert.rejects(
        p.run(
          new Map<string, Tensor | CudaState>([
            ["acc", small],
            ["x", x],
          ]),
        ),
        (e: unknown) => e instanceof CudaStateError || e instanceof RunError,
      );
      await assert.rejects(
        p.run(
          new Map([
            ["acc", x],
            ["x", x],
          ]),
          { outputsTo: new Map([["acc", a]]) },
        ),
        /outputsTo names 'acc', which is not an output/,
      );
      const bf = new CudaRuntime(addon, CUDA_BF16_TARGET).createState("bf", "f32", [4]);
      assert.equal(bf.storage, "bf16");
      await assert.rejects(
        p.run(
          new Map([
            ["acc", x],
            ["x", x],
          ]),
          { outputsTo: new Map([["y", bf]]) },
        ),
        /output 'y' is stored as f32 on the device, but state 'bf' as bf16/,
      );
      assert.throws(
        () => rt.writeState("a", tensor("f32", [2], [1, 2])),
        /state 'a' is f32\[4\], got f32\[2\]/,
      );
      // Program memory and states are freed separately.
      p.destroy();
      assert.equal(addon.mem.size, 4, "a, b, small and bf outlive the program");
      rt.destroy();
      assert.throws(() => rt.state("a"), /no state buffer 'a'/);
      addon.free(bf.ptr);
      assert.equal(addon.mem.size, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(dir2, { recursive: true, force: true });
    }
  },
);
