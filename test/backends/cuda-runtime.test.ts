import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RunError, runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator, type CudaEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, type CudaManifest, emulateProgram } from "../../backends/cuda/program.js";
import { CUDA_BF16_TARGET, CUDA_TARGET } from "../../backends/cuda/target.js";
import { findGxx } from "../../backends/cuda/toolchain.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit, FMNIST_VIT } from "../../examples/fmnist-vit/vit-ir.js";
import { CUDA_ADDON_PATH, type CudaAddon, type DeviceHandle } from "../../runtime/cuda/loader.js";
import {
  CudaArtifactError,
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

/**
 * A CudaAddon whose device memory is host bytes and whose launches run emulated. Like cudaMalloc,
 * freed blocks are reused by later allocations (every allocation is poisoned with 0xFF), so a
 * buffer freed or handed out twice by mistake gets clobbered. Each loaded module runs on the
 * emulator registered for its fatbin bytes (`emulate`), so several programs share one memory.
 */
class EmulatedAddon implements CudaAddon {
  readonly mem = new Map<DeviceHandle, Uint8Array>();
  private readonly freed: Uint8Array[] = [];
  private readonly byFatbin = new Map<Uint8Array, CudaEmulator>();
  private readonly modules = new Map<DeviceHandle, CudaEmulator>();
  launches = 0;
  constructor(private readonly emu: CudaEmulator) {}
  /** Launches in modules loaded from `fatbin` (by identity) run on `emu`. */
  emulate(fatbin: Uint8Array, emu: CudaEmulator): this {
    this.byFatbin.set(fatbin, emu);
    return this;
  }
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
    const i = this.freed.findIndex((b) => b.length >= bytes);
    const block = i >= 0 ? this.freed.splice(i, 1)[0].subarray(0, bytes) : new Uint8Array(bytes);
    this.mem.set(h, block.fill(0xff));
    return h;
  }
  free(p: DeviceHandle): void {
    const block = this.mem.get(p);
    assert.ok(block && this.mem.delete(p), "double free");
    this.freed.push(block);
  }
  upload(p: DeviceHandle, data: Uint8Array): void {
    this.mem.get(p)!.set(data);
  }
  download(p: DeviceHandle, bytes: number): Uint8Array {
    return this.mem.get(p)!.slice(0, bytes);
  }
  loadModule(fatbin: Uint8Array): DeviceHandle {
    const h = {};
    this.modules.set(h, this.byFatbin.get(fatbin) ?? this.emu);
    return h;
  }
  launch(
    module: DeviceHandle,
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
    const got = this.modules.get(module)!.run(
      bufs,
      [{ kernel, grid, symbols, args }],
      bufs.map((b) => b.id),
    );
    handles.forEach((h, id) => this.mem.get(h)!.set(got.get(id)!));
  }
  synchronize(): void {}
}

/** Compiles `g` for CUDA (no nvcc: the double ignores the fatbin) and reads the artifact back. */
function artifact(
  g: Graph,
  dir: string,
  target: Target = CUDA_TARGET,
): { files: CudaArtifactFiles; emu: CudaEmulator } {
  const a = compileCudaProgram(buildProgram(g, target), dir, { nvcc: false });
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
      // Another program on the same runtime and memory (blocks are reused after free, so state
      // memory freed or planned by mistake would be clobbered) leaves the states alone.
      const other = artifact(mlp(), dir2);
      addon.emulate(other.files.fatbin, other.emu);
      const q = rt.load(other.files);
      for (const T of [5, 9]) await q.run(new Map([["x", tensor("f32", [T, 8], rand(T, T * 8))]]));
      q.destroy();
      assert.deepEqual(Array.from((await rt.readState("b")).data), [31, 62, 93, 124]);
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

test(
  "cuda runtime: load refuses an artifact whose storage differs from the runtime's target",
  { skip: skipEmu },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    const dir2 = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      const bf = artifact(accumulate(), dir, CUDA_BF16_TARGET);
      const f32 = artifact(accumulate(), dir2);
      const addon = new EmulatedAddon(bf.emu);
      assert.throws(
        () => new CudaRuntime(addon).load(bf.files),
        (e: unknown) =>
          e instanceof CudaArtifactError &&
          /accumulate: the artifact stores f32 buffer '(acc|x|y)' as bf16, but this runtime's target stores f32 as f32 \(a --bf16 artifact needs new CudaRuntime\(addon, CUDA_BF16_TARGET\)\)/.test(
            e.message,
          ),
      );
      assert.throws(
        () => new CudaRuntime(addon, CUDA_BF16_TARGET).load(f32.files),
        /stores f32 buffer '(acc|x|y)' as f32, but this runtime's target stores f32 as bf16/,
      );
      assert.equal(addon.mem.size, 0, "nothing allocated by a refused load");
      // The matching runtime runs it, with bf16 states (values exact in bf16).
      const rt = new CudaRuntime(addon, CUDA_BF16_TARGET);
      const p = rt.load(bf.files);
      const s = rt.createState("acc", "f32", [4]);
      rt.writeState("acc", tensor("f32", [4], [1, 2, 3, 4]));
      const x = tensor("f32", [4], [0.5, 1, 2, 4]);
      await p.run(
        new Map<string, Tensor | CudaState>([
          ["acc", s],
          ["x", x],
        ]),
        { outputsTo: new Map([["y", s]]) },
      );
      assert.deepEqual(Array.from((await rt.readState("acc")).data), [1.5, 3, 5, 8]);
      p.destroy();
      rt.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(dir2, { recursive: true, force: true });
    }
  },
);

test(
  "cuda: offset views (WGSL binding-limit chunks) are refused by compile, emulation and load",
  { skip: skipEmu },
  () => {
    // A binding limit small enough to split x[64, 4] (1 KiB) into row chunks at 256-byte offsets.
    const g = new GraphBuilder("rows");
    const p = buildProgram(g.output(g.op("Exp", [g.op("Relu", [g.input("x", "f32", [64, 4])])])), {
      ...CUDA_TARGET,
      maxStorageBindingBytes: 256,
    });
    const views = p.buffers.filter((b) => b.offset);
    assert.ok(views.length > 0, "the schedule split something");
    const first = `buffer '${views[0].name}' is a view at element offset ${views[0].offset}`;
    const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-rt-"));
    try {
      assert.throws(
        () => compileCudaProgram(p, dir, { nvcc: false }),
        (e: unknown) =>
          e instanceof Error &&
          e.message.includes(first) &&
          /schedule the program for CUDA_TARGET/.test(e.message),
      );
      const { files, emu } = artifact(mlp(), dir);
      assert.throws(
        () => emulateProgram(emu, p, new Map([["x", tensor("f32", [64, 4], rand(1, 256))]])),
        (e: unknown) => e instanceof RunError && e.message.includes(first),
      );
      // A manifest carrying an offset view (as a WGSL manifest can) is refused at load.
      const [a, b] = files.manifest.buffers.filter(
        (b) => b.kind === "intermediate" && b.aliasOf === undefined,
      );
      const manifest = {
        ...files.manifest,
        buffers: files.manifest.buffers.map((x) => (x.id === b.id ? { ...x, aliasOf: a.id, offset: 64 } : x)),
      };
      const addon = new EmulatedAddon(emu);
      assert.throws(
        () => CudaProgram.load({ ...files, manifest }, addon),
        (e: unknown) =>
          e instanceof CudaArtifactError &&
          e.message.includes(`buffer '${b.name}' is a view at element offset 64 into buffer ${a.id}`),
      );
      assert.equal(addon.mem.size, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
