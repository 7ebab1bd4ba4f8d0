/**
 * Device memory planning by liveness (pure; no device API). Buffers that share storage (views
 * via `aliasOf`) form one group; a group lives from its first to its last step (inputs from
 * before the first step, outputs until after the last) and takes a slot no overlapping group
 * holds. A freed slot is reused by the next group that fits; if none fits, the largest free slot
 * grows (slots are sized before any allocation, so growing costs nothing).
 */
import { type DimEnv, evalDim } from "../compiler/ir/sym.js";
import type { ProgramBuffer } from "../compiler/kir/program.js";
import { elementBytes, type KType } from "../compiler/kir/types.js";

/** Bytes a buffer of `elements` takes on the device (4-byte aligned, at least 4: bindings need it). */
export function deviceBytes(storage: Exclude<KType, "bool">, elements: number): number {
  return Math.max(4, Math.ceil((elements * elementBytes(storage)) / 4) * 4);
}

export interface MemoryPlan {
  /** Bytes of each slot (one device buffer per slot). */
  readonly slots: readonly number[];
  /** Slot of every planned buffer id (views get their root's slot). */
  readonly slotOf: ReadonlyMap<number, number>;
  /** Bytes each buffer id's view covers (all buffers, planned or not). */
  readonly bytes: ReadonlyMap<number, number>;
  /** Byte offset of each buffer id's view in its root's storage (0 but for chunk views, `ProgramBuffer.offset`). */
  readonly offsets: ReadonlyMap<number, number>;
  /** Root buffer id (following aliasOf) of every buffer. */
  readonly root: ReadonlyMap<number, number>;
  /** Sum of slot sizes: the device memory the run's non-constant buffers take. */
  readonly peakBytes: number;
  /** Most bytes live at one time (a lower bound for any plan). */
  readonly liveBytes: number;
  /** Bytes without reuse (every group its own buffer). */
  readonly unplannedBytes: number;
  /** Bytes of constant groups (allocated once per loaded program, not per run). */
  readonly constantBytes: number;
}

/**
 * Plans the buffers of one run under a symbol binding. Groups whose root is in `external`
 * (bound to caller-owned state buffers) and constant groups are not planned.
 */
export function planMemory(
  buffers: readonly ProgramBuffer[],
  env: DimEnv,
  external: ReadonlySet<number> = new Set(),
): MemoryPlan {
  const byId = new Map(buffers.map((b) => [b.id, b]));
  const rootOf = (b: ProgramBuffer): number => {
    let r = b;
    for (let n = 0; r.aliasOf !== undefined; n++) {
      const next = byId.get(r.aliasOf);
      if (!next || n > buffers.length) throw new Error(`buffer '${b.name}': broken aliasOf chain`);
      r = next;
    }
    return r.id;
  };
  interface Group {
    id: number;
    start: number;
    end: number;
    bytes: number;
    constant: boolean;
  }
  const groups = new Map<number, Group>();
  const bytes = new Map<number, number>();
  const offsets = new Map<number, number>();
  const root = new Map<number, number>();
  for (const b of buffers) {
    const n = deviceBytes(b.storage, evalDim(b.size, env));
    const off = b.offset === undefined ? 0 : b.offset * elementBytes(b.storage);
    bytes.set(b.id, n);
    offsets.set(b.id, off);
    const r = rootOf(b);
    root.set(b.id, r);
    const start = b.kind === "input" ? -1 : b.firstUse;
    const end = b.kind === "output" ? Infinity : Math.max(b.lastUse, start);
    const g = groups.get(r);
    if (!g) groups.set(r, { id: r, start, end, bytes: off + n, constant: b.kind === "constant" });
    else {
      g.start = Math.min(g.start, start);
      g.end = Math.max(g.end, end);
      g.bytes = Math.max(g.bytes, off + n);
      g.constant ||= b.kind === "constant";
    }
  }
  const planned = [...groups.values()]
    .filter((g) => !g.constant && !external.has(g.id))
    .sort((a, b) => a.start - b.start || a.id - b.id);
  const constantBytes = [...groups.values()].filter((g) => g.constant).reduce((s, g) => s + g.bytes, 0);

  const slots: number[] = [];
  const groupSlot = new Map<number, number>();
  let active: Group[] = [];
  const free: number[] = [];
  for (const g of planned) {
    active = active.filter((a) => {
      if (a.end >= g.start) return true;
      free.push(groupSlot.get(a.id)!);
      return false;
    });
    let pick = -1;
    for (const s of free) if (slots[s] >= g.bytes && (pick < 0 || slots[s] < slots[pick])) pick = s;
    if (pick < 0 && free.length > 0) pick = free.reduce((a, s) => (slots[s] > slots[a] ? s : a), free[0]);
    if (pick < 0) {
      pick = slots.length;
      slots.push(0);
    } else free.splice(free.indexOf(pick), 1);
    slots[pick] = Math.max(slots[pick], g.bytes);
    groupSlot.set(g.id, pick);
    active.push(g);
  }

  // Peak of live bytes over time: evaluated at every group start.
  let liveBytes = 0;
  for (const g of planned) {
    const live = planned
      .filter((o) => o.start <= g.start && o.end >= g.start)
      .reduce((s, o) => s + o.bytes, 0);
    liveBytes = Math.max(liveBytes, live);
  }
  const slotOf = new Map<number, number>();
  for (const b of buffers) {
    const s = groupSlot.get(root.get(b.id)!);
    if (s !== undefined) slotOf.set(b.id, s);
  }
  return {
    slots,
    slotOf,
    bytes,
    offsets,
    root,
    peakBytes: slots.reduce((a, b) => a + b, 0),
    liveBytes,
    unplannedBytes: planned.reduce((s, g) => s + g.bytes, 0),
    constantBytes,
  };
}
