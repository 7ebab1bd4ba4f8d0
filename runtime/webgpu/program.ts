/// <reference types="@webgpu/types" />
import type { DType } from "../../compiler/ir/dtype.js";
import { type Dim, evalDim, printDim, symbolName } from "../../compiler/ir/sym.js";
import { allocData, numel, type Tensor } from "../../compiler/ir/tensor.js";
import { uniformBytes } from "../../backends/wgsl/render.js";
import { stepEnv } from "../../compiler/kir/program.js";
import { type CompiledProgram, unboundSymbolError } from "../artifact.js";
import { fromDevice, toDevice } from "../device-data.js";
import { deviceBytes, type MemoryPlan, planMemory } from "../plan.js";
import type { GpuKernel } from "./pipelines.js";
import { GpuRuntimeError, type GpuState } from "./device.js";
import type { WebGpuRuntime } from "./runtime.js";

const MAX_GROUPS = 65535;
/** Usage of every program buffer (a function: the WebGPU globals exist only once a GPU is created). */
const STORAGE = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export interface RunOptions {
  /** Write these outputs into state buffers instead of reading them back. */
  readonly outputsTo?: ReadonlyMap<string, GpuState>;
}

/** What `bind` reads of an input: a host tensor, a state buffer, or just a shape (slice planning). */
type Shaped = { readonly dtype: DType; readonly shape: readonly number[] };

/** A step argument above the run's binding limit under some symbol values. */
interface Oversized {
  readonly step: number;
  readonly id: number;
  readonly bytes: number;
}

/** Runs shorter than this (ms) are awaited at once: a timer's granularity would eat the gain. */
const MIN_SLEEP_RUN_MS = 4;
/** Share of the fastest observed device time the host sleeps before awaiting the readback. */
const SLEEP_FRACTION = 0.8;

/**
 * The expected device time of one prepared run (submit to readback), for `hostWait: "sleep"`:
 * the fastest time seen so far, since load from other work only ever makes a run slower. The
 * first run of a binding is not counted: drivers compile pipelines at their first dispatch
 * (lavapipe: seconds to minutes for large kernels), so it can be many times a steady run. A sleep
 * of 80% of the estimate ends before the device finishes on every run that is not faster than all
 * counted before, and then the host awaits the rest; a faster run costs at most the difference.
 */
export class HostWaitEstimate {
  private fastest = Infinity;
  private runs = 0;

  /** Milliseconds to sleep after the submit (0 until a counted run long enough has been seen). */
  sleepMs(): number {
    return this.fastest >= MIN_SLEEP_RUN_MS && this.fastest < Infinity ? this.fastest * SLEEP_FRACTION : 0;
  }

  record(ms: number): void {
    if (this.runs++ > 0) this.fastest = Math.min(this.fastest, ms);
  }
}

/** One dispatch of a run, timed alone (`GpuProgram.timeDispatches`). */
export interface DispatchTiming {
  /** Index into the program's steps. */
  readonly step: number;
  readonly kernel: string;
  readonly nodes: readonly string[];
  readonly grid: readonly [number, number, number];
  /** Median ms of the dispatch in its own submit, minus an empty submit's median round trip (>= 0). */
  readonly ms: number;
}

export interface TimeDispatchesOptions {
  /** Timed submits per dispatch (their median is taken); default 3. */
  readonly repeats?: number;
  /** Empty submits measuring the round trip (their median is subtracted); default 20. */
  readonly emptySubmits?: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Everything a run with one symbol binding (and one set of state bindings) reuses. */
interface Prepared {
  readonly key: string;
  readonly env: Map<string, number>;
  readonly plan: MemoryPlan;
  readonly buffer: (id: number) => GPUBuffer;
  /** Steps with an empty grid have none; `step` indexes the program's steps. */
  readonly dispatches: readonly {
    kernel: GpuKernel;
    group: GPUBindGroup;
    grid: [number, number, number];
    step: number;
  }[];
  readonly staging: Map<number, GPUBuffer>;
  readonly uniforms?: GPUBuffer;
  readonly wait: HostWaitEstimate;
}

/**
 * A loaded program: constants live on the device for its lifetime; each run binds symbols from
 * the input shapes, plans buffers by liveness, records every dispatch into one command encoder
 * and one submit, and reads outputs back asynchronously.
 */
export class GpuProgram {
  private readonly constants = new Map<number, GPUBuffer>();
  private slotBuffers: GPUBuffer[] = [];
  private prepared: Prepared | undefined;
  /** Device-time estimates by prepared key (kept when another binding replaces the prepared run). */
  private readonly waits = new Map<string, HostWaitEstimate>();
  private lastSleep = 0;

  constructor(
    readonly runtime: WebGpuRuntime,
    readonly program: CompiledProgram,
    private readonly kernels: readonly GpuKernel[],
  ) {
    const unbound = unboundSymbolError(program, program.kernels);
    if (unbound) throw new GpuRuntimeError(unbound);
    const device = runtime.device;
    for (const b of program.buffers) {
      if (b.kind !== "constant" || b.aliasOf !== undefined) continue;
      if (!b.data) throw new GpuRuntimeError(`${program.name}: constant buffer '${b.name}' has no data`);
      const bytes = toDevice(b.data, b.storage, `constant '${b.name}'`);
      this.checkBufferSize(`constant '${b.name}'`, bytes.byteLength);
      const buf = device.createBuffer({ label: b.name, size: bytes.byteLength, usage: STORAGE() });
      device.queue.writeBuffer(buf, 0, bytes);
      this.constants.set(b.id, buf);
    }
  }

  /** Milliseconds the host slept before awaiting the latest run's readback (`hostWait`). */
  get lastSleepMs(): number {
    return this.lastSleep;
  }

  /** The memory plan of the latest run (peak device bytes and slot sizes). */
  get lastPlan(): MemoryPlan | undefined {
    return this.prepared?.plan;
  }

  /**
   * Runs the program; returns the outputs not redirected to state buffers, by output name. When
   * the bound symbols make a (symbolic) binding exceed the limit and the program is
   * batch-separable, runs consecutive batch slices that fit and concatenates the outputs.
   */
  async run(
    inputs: ReadonlyMap<string, Tensor | GpuState>,
    opts: RunOptions = {},
  ): Promise<Map<string, Tensor>> {
    const env = this.bind(inputs);
    const over = this.oversized(env);
    if (!over) return this.runOnce(inputs, env, opts);
    return this.runSlices(inputs, opts, over);
  }

  private async runOnce(
    inputs: ReadonlyMap<string, Tensor | GpuState>,
    env: Map<string, number>,
    opts: RunOptions,
  ): Promise<Map<string, Tensor>> {
    const cp = this.program;
    for (const name of opts.outputsTo?.keys() ?? [])
      if (!cp.outputs.some((id) => cp.buffers[id].name === name))
        throw new GpuRuntimeError(`${cp.name}: outputsTo names '${name}', which is not an output`);
    const external = new Map<number, GpuState>();
    const bindState = (id: number, s: GpuState, what: string): void => {
      const b = cp.buffers[id];
      const shape = b.dims.map((d) => evalDim(d, env));
      if (s.dtype !== b.dtype || s.shape.join() !== shape.join())
        throw new GpuRuntimeError(
          `${what} '${b.name}' is ${b.dtype}[${shape.join(", ")}], but state '${s.name}' is ${s.dtype}[${s.shape.join(", ")}]`,
        );
      external.set(id, s);
    };
    for (const id of cp.inputs) {
      const v = inputs.get(cp.buffers[id].name)!;
      if (isState(v)) bindState(id, v, "input");
    }
    for (const id of cp.outputs) {
      const s = opts.outputsTo?.get(cp.buffers[id].name);
      if (s) bindState(id, s, "output");
    }
    const p = this.prepare(env, external);
    const device = this.runtime.device;
    device.pushErrorScope("validation");
    device.pushErrorScope("out-of-memory");
    for (const id of cp.inputs) {
      const v = inputs.get(cp.buffers[id].name)!;
      if (!isState(v))
        device.queue.writeBuffer(
          p.buffer(id),
          0,
          toDevice(v, cp.buffers[id].storage, `input '${cp.buffers[id].name}'`),
        );
    }
    const enc = device.createCommandEncoder({ label: cp.name });
    const pass = enc.beginComputePass({ label: cp.name });
    for (const d of p.dispatches) {
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, d.group);
      pass.dispatchWorkgroups(...d.grid);
    }
    pass.end();
    for (const [id, st] of p.staging)
      enc.copyBufferToBuffer(p.buffer(id), p.plan.offsets.get(id)!, st, 0, st.size);
    device.queue.submit([enc.finish()]);
    const submitted = performance.now();
    const oom = await device.popErrorScope();
    const invalid = await device.popErrorScope();
    const err = invalid ?? oom;
    if (err) throw new GpuRuntimeError(`${cp.name}: device error during the run: ${err.message}`);
    if (p.staging.size > 0) {
      const sleep =
        this.runtime.ctx.hostWait === "sleep" ? p.wait.sleepMs() - (performance.now() - submitted) : 0;
      this.lastSleep = sleep >= 1 ? sleep : 0;
      if (sleep >= 1) await new Promise((resolve) => setTimeout(resolve, sleep));
      await Promise.all([...p.staging.values()].map((s) => s.mapAsync(GPUMapMode.READ)));
      p.wait.record(performance.now() - submitted);
    }
    const out = new Map<string, Tensor>();
    for (const id of cp.outputs) {
      const st = p.staging.get(id);
      if (!st) continue;
      const b = cp.buffers[id];
      const shape = b.dims.map((d) => evalDim(d, env));
      out.set(b.name, fromDevice(st.getMappedRange().slice(0), b.storage, b.dtype, shape));
      st.unmap();
    }
    return out;
  }

  /**
   * Wall time per repetition of the program's dispatches: `repeats` copies recorded into one
   * compute pass and one submit, waited for with onSubmittedWorkDone (no readback). For the
   * compile-time autotuner; the first call also pays any lazy pipeline compilation.
   */
  async time(inputs: ReadonlyMap<string, Tensor>, repeats: number): Promise<number> {
    const cp = this.program;
    const p = await this.prepareTiming(inputs);
    return (await this.submitTimed(`${cp.name} timing`, p.dispatches, repeats)) / repeats;
  }

  /** Wall ms of one submit of `dispatches` recorded `repeats` times into one compute pass. */
  private async submitTimed(label: string, dispatches: Prepared["dispatches"], repeats = 1): Promise<number> {
    const device = this.runtime.device;
    const enc = device.createCommandEncoder({ label });
    const pass = enc.beginComputePass();
    for (let r = 0; r < repeats; r++)
      for (const d of dispatches) {
        pass.setPipeline(d.kernel.pipeline);
        pass.setBindGroup(0, d.group);
        pass.dispatchWorkgroups(...d.grid);
      }
    pass.end();
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  }

  /**
   * GPU time of every dispatch alone (for profiles): each dispatch in its own submit, awaited,
   * `repeats` times, minus the median round trip of an empty submit. With `inputs` the run is
   * prepared for them and they are uploaded; without, the latest run's dispatches are timed as
   * bound (intermediates hold that run's values).
   */
  async timeDispatches(
    inputs: ReadonlyMap<string, Tensor> | undefined,
    opts: TimeDispatchesOptions = {},
  ): Promise<DispatchTiming[]> {
    const cp = this.program;
    const p = inputs ? await this.prepareTiming(inputs) : this.prepared;
    if (!p) throw new GpuRuntimeError(`${cp.name}: timeDispatches without inputs needs a run first`);
    const [repeats, emptySubmits] = [opts.repeats ?? 3, opts.emptySubmits ?? 20];
    if (!(repeats >= 1 && emptySubmits >= 1))
      throw new GpuRuntimeError(`${cp.name}: timeDispatches needs repeats and emptySubmits >= 1`);
    const submitOne = (d?: Prepared["dispatches"][number]): Promise<number> =>
      this.submitTimed(`${cp.name} dispatch timing`, d ? [d] : []);
    const empty: number[] = [];
    for (let i = 0; i < emptySubmits; i++) empty.push(await submitOne());
    const base = median(empty);
    const samples = p.dispatches.map(() => [] as number[]);
    for (let r = 0; r < repeats; r++)
      for (const [i, d] of p.dispatches.entries()) samples[i].push(await submitOne(d));
    return p.dispatches.map((d, i) => {
      const s = cp.steps[d.step];
      const ms = Math.max(0, median(samples[i]) - base);
      return { step: d.step, kernel: cp.kernels[s.kernel].name, nodes: s.nodes, grid: d.grid, ms };
    });
  }

  /** Prepares a run for `inputs` and uploads them (timing: no outputs are read back). */
  private async prepareTiming(inputs: ReadonlyMap<string, Tensor>): Promise<Prepared> {
    const cp = this.program;
    const p = this.prepare(this.bind(inputs), new Map());
    const device = this.runtime.device;
    for (const id of cp.inputs) {
      const b = cp.buffers[id];
      device.queue.writeBuffer(p.buffer(id), 0, toDevice(inputs.get(b.name)!, b.storage, b.name));
    }
    await device.queue.onSubmittedWorkDone();
    return p;
  }

  /** Symbol values from input shapes (plus capacities of data-dependent symbols); checks every input. */
  private bind(inputs: ReadonlyMap<string, Shaped>): Map<string, number> {
    const cp = this.program;
    const env = new Map<string, number>();
    const errors: string[] = [];
    const names = cp.inputs.map((id) => cp.buffers[id].name);
    for (const n of inputs.keys())
      if (!names.includes(n)) errors.push(`unexpected input '${n}' (inputs: ${names.join(", ")})`);
    const shapeOf = (v: Shaped): readonly number[] => v.shape;
    for (const id of cp.inputs) {
      const b = cp.buffers[id];
      const v = inputs.get(b.name);
      if (!v) errors.push(`missing input '${b.name}'`);
      else if (v.dtype !== b.dtype)
        errors.push(`input '${b.name}' has dtype ${v.dtype}, expected ${b.dtype}`);
      else if (shapeOf(v).length !== b.dims.length)
        errors.push(`input '${b.name}' has rank ${shapeOf(v).length}, expected ${b.dims.length}`);
      else
        b.dims.forEach((d, i) => {
          const s = symbolName(d);
          if (s !== undefined && !env.has(s)) env.set(s, shapeOf(v)[i]);
        });
    }
    if (errors.length === 0) {
      for (const s of cp.symbols)
        if (!env.has(s.name) && s.capacity !== undefined)
          env.set(s.name, this.eval(s.capacity, env, `capacity of ${s.name}`));
      for (const s of cp.symbols)
        if (!env.has(s.name)) errors.push(`symbol ${s.name} is not bound by any input shape`);
      for (const id of cp.inputs) {
        const b = cp.buffers[id];
        const shape = shapeOf(inputs.get(b.name)!);
        b.dims.forEach((d, i) => {
          let want: number;
          try {
            want = evalDim(d, env);
          } catch {
            return;
          }
          if (want !== shape[i])
            errors.push(`input '${b.name}' dimension ${i} is ${shape[i]}, expected ${printDim(d)} = ${want}`);
        });
      }
    }
    for (const [s, v] of env)
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** 31) errors.push(`symbol ${s} = ${v} does not fit i32`);
    if (errors.length > 0) throw new GpuRuntimeError(`${cp.name}: ${errors.join("; ")}`);
    return env;
  }

  private eval(d: Dim, env: ReadonlyMap<string, number>, what: string): number {
    try {
      return evalDim(d, env);
    } catch (e) {
      throw new GpuRuntimeError(`${this.program.name}: ${what}: ${(e as Error).message}`);
    }
  }

  /** Buffers may exceed the binding limit (chunks bind sub-ranges) but not the device's buffer size. */
  private checkBufferSize(what: string, bytes: number): void {
    const max = this.runtime.device.limits.maxBufferSize;
    if (bytes > max)
      throw new GpuRuntimeError(
        `${this.program.name}: ${what} needs ${bytes} bytes, above the device's max buffer size ${max}`,
      );
  }

  private prepare(env: Map<string, number>, external: ReadonlyMap<number, GpuState>): Prepared {
    const cp = this.program;
    const key = JSON.stringify([...env]) + [...external].map(([id, s]) => `|${id}:${s.name}`).join("");
    if (this.prepared?.key === key) return this.prepared;
    this.releasePrepared();
    const device = this.runtime.device;
    const plan = planMemory(cp.buffers, env, new Set(external.keys()));
    plan.slots.forEach((bytes, i) => this.checkBufferSize(`memory slot ${i}`, bytes));
    // The schedule splits statically sized bindings above the limit; symbolic ones are known only now.
    const over = this.oversized(env);
    if (over) throw this.oversizedError(over, "bind smaller symbol values");
    plan.slots.forEach((bytes, i) => {
      const cur = this.slotBuffers[i];
      if (cur && cur.size >= bytes) return;
      cur?.destroy();
      this.slotBuffers[i] = device.createBuffer({
        label: `${cp.name} slot ${i}`,
        size: bytes,
        usage: STORAGE(),
      });
    });
    const buffer = (id: number): GPUBuffer => {
      const root = plan.root.get(id)!;
      const ext = external.get(root) ?? external.get(id);
      if (ext) return ext.buffer;
      const c = this.constants.get(root);
      if (c) return c;
      return this.slotBuffers[plan.slotOf.get(id)!];
    };
    // One uniform buffer; each dispatch with symbols reads its own aligned slice.
    const align = device.limits.minUniformBufferOffsetAlignment;
    let uniformSize = 0;
    const offsets = cp.steps.map((s) => {
      const k = cp.kernels[s.kernel];
      if (k.symbols.length === 0) return -1;
      const off = uniformSize;
      uniformSize += Math.ceil(uniformBytes(k.symbols.length) / align) * align;
      return off;
    });
    const uniforms =
      uniformSize > 0
        ? device.createBuffer({
            label: `${cp.name} symbols`,
            size: uniformSize,
            usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
          })
        : undefined;
    const data = new Int32Array(uniformSize / 4);
    const dispatches: Prepared["dispatches"][number][] = [];
    cp.steps.forEach((s, i) => {
      const k = cp.kernels[s.kernel];
      const where = `kernel ${k.name} (step ${i}: ${s.nodes.join(", ")})`;
      // Generic kernels: the step binds its own values of the class symbols.
      const senv = stepEnv(env, s);
      const grid = k.grid.map((d) => this.eval(d, senv, `${where} grid`)) as [number, number, number];
      if (grid.some((g) => g > MAX_GROUPS))
        throw new GpuRuntimeError(
          `${cp.name}: ${where}: grid [${grid.join(", ")}] exceeds ${MAX_GROUPS} workgroups per axis`,
        );
      if (grid.some((g) => g <= 0)) return;
      const entries: GPUBindGroupEntry[] = s.args.map((id, j) => ({
        binding: j,
        resource: { buffer: buffer(id), offset: plan.offsets.get(id)!, size: plan.bytes.get(id)! },
      }));
      if (offsets[i] >= 0) {
        k.symbols.forEach((sym, j) => (data[offsets[i] / 4 + j] = senv.get(sym)!));
        entries.push({
          binding: k.params.length,
          resource: { buffer: uniforms!, offset: offsets[i], size: uniformBytes(k.symbols.length) },
        });
      }
      const kernel = this.kernels[s.kernel];
      dispatches.push({
        kernel,
        grid,
        step: i,
        group: device.createBindGroup({ layout: kernel.layout, entries, label: where }),
      });
    });
    if (uniforms) device.queue.writeBuffer(uniforms, 0, data);
    const staging = new Map<number, GPUBuffer>();
    for (const id of cp.outputs)
      if (!external.has(id) && !staging.has(id))
        staging.set(
          id,
          device.createBuffer({
            label: `${cp.buffers[id].name} readback`,
            size: plan.bytes.get(id)!,
            usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          }),
        );
    let wait = this.waits.get(key);
    if (!wait) this.waits.set(key, (wait = new HostWaitEstimate()));
    this.prepared = { key, env, plan, buffer, dispatches, staging, uniforms, wait };
    return this.prepared;
  }

  /** The binding limit: the device's, or the program's target's if lower (it was scheduled for it). */
  private get maxBinding(): number {
    return Math.min(
      this.runtime.device.limits.maxStorageBufferBindingSize,
      this.program.target.maxStorageBindingBytes,
    );
  }

  /** The first step argument whose size under `env` exceeds the binding limit. */
  private oversized(env: ReadonlyMap<string, number>): Oversized | undefined {
    const cp = this.program;
    const max = this.maxBinding;
    for (const [step, s] of cp.steps.entries())
      for (const id of s.args) {
        const b = cp.buffers[id];
        const bytes = deviceBytes(b.storage, this.eval(b.size, env, `size of '${b.name}'`));
        if (bytes > max) return { step, id, bytes };
      }
    return undefined;
  }

  private oversizedError(o: Oversized, hint: string): GpuRuntimeError {
    const cp = this.program;
    const s = cp.steps[o.step];
    return new GpuRuntimeError(
      `${cp.name}: step ${o.step} (${s.nodes.join(", ")}) binds '${cp.buffers[o.id].name}' of ${o.bytes} bytes, ` +
        `above the max storage binding size ${this.maxBinding} (its size is symbolic, so the schedule ` +
        `could not split it; ${hint})`,
    );
  }

  /**
   * The batch symbol when the program is batch-separable (decided at compile time: Program.batchSymbol)
   * and no state buffer is bound. Else the reason.
   */
  private batchSymbol(
    inputs: ReadonlyMap<string, Tensor | GpuState>,
    opts: RunOptions,
  ): string | { why: string } {
    const cp = this.program;
    if (cp.batchSymbol === undefined)
      return {
        why:
          cp.batchRefusal ??
          "the program records no batch symbol (compiled before batch separability was checked: recompile it)",
      };
    if ((opts.outputsTo?.size ?? 0) > 0) return { why: "outputs are written to state buffers (outputsTo)" };
    for (const [name, v] of inputs) if (isState(v)) return { why: `input '${name}' is a state buffer` };
    return cp.batchSymbol;
  }

  /** Runs consecutive slices along the batch axis, each the largest that fits the binding limit. */
  private async runSlices(
    inputs: ReadonlyMap<string, Tensor | GpuState>,
    opts: RunOptions,
    over: Oversized,
  ): Promise<Map<string, Tensor>> {
    const cp = this.program;
    const batch = this.batchSymbol(inputs, opts);
    if (typeof batch !== "string")
      throw this.oversizedError(over, `micro-batching does not apply: ${batch.why}`);
    const tensors = inputs as ReadonlyMap<string, Tensor>;
    const total = tensors.values().next().value!.shape[0];
    const shapesAt = (n: number): Map<string, Shaped> =>
      new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: [n, ...t.shape.slice(1)] }]));
    const fits = (n: number): boolean => this.oversized(this.bind(shapesAt(n))) === undefined;
    if (!fits(1))
      throw this.oversizedError(
        this.oversized(this.bind(shapesAt(1)))!,
        `micro-batching does not apply: it is above the limit even for ${batch} = 1`,
      );
    // Sizes grow with the batch: the largest slice that fits is a binary search (fits(lo), !fits(hi)).
    let [lo, hi] = [1, total];
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    const parts = new Map<string, Tensor[]>();
    for (let start = 0; start < total; start += lo) {
      const end = Math.min(total, start + lo);
      const slice = new Map([...tensors].map(([k, t]) => [k, sliceRows(t, start, end)]));
      const env = this.bind(slice);
      const o = this.oversized(env);
      if (o) throw this.oversizedError(o, `the batch slice ${batch} = ${end - start} does not fit either`);
      for (const [k, t] of await this.runOnce(slice, env, {})) parts.set(k, [...(parts.get(k) ?? []), t]);
    }
    const out = new Map<string, Tensor>();
    for (const [k, ts] of parts) out.set(k, concatRows(ts, `${cp.name}: output '${k}'`));
    return out;
  }

  private releasePrepared(): void {
    const p = this.prepared;
    if (!p) return;
    p.uniforms?.destroy();
    for (const s of p.staging.values()) s.destroy();
    this.prepared = undefined;
  }

  /** Frees the program's device buffers (constants, slots, staging). */
  destroy(): void {
    this.releasePrepared();
    for (const b of this.constants.values()) b.destroy();
    for (const b of this.slotBuffers) b.destroy();
    this.constants.clear();
    this.slotBuffers = [];
  }
}

function isState(v: Tensor | { buffer: unknown }): v is GpuState {
  return "buffer" in v;
}

/** Rows [start, end) of axis 0 (a view of the same data). */
function sliceRows(t: Tensor, start: number, end: number): Tensor {
  const inner = numel(t.shape.slice(1));
  return {
    dtype: t.dtype,
    shape: [end - start, ...t.shape.slice(1)],
    data: t.data.subarray(start * inner, end * inner),
  };
}

/** Concatenates tensors along axis 0; their other axes must agree. */
function concatRows(ts: readonly Tensor[], what: string): Tensor {
  const rest = ts[0].shape.slice(1);
  for (const t of ts)
    if (t.shape.slice(1).join() !== rest.join())
      throw new GpuRuntimeError(
        `${what}: batch slices have shapes [${ts[0].shape.join(", ")}] and [${t.shape.join(", ")}], which do not concatenate`,
      );
  const rows = ts.reduce((a, t) => a + t.shape[0], 0);
  const data = allocData(ts[0].dtype, rows * numel(rest));
  let off = 0;
  for (const t of ts) {
    data.set(t.data, off);
    off += t.data.length;
  }
  return { dtype: ts[0].dtype, shape: [rows, ...rest], data };
}
