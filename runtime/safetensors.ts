/**
 * safetensors reader and writer over plain bytes (no Node imports: the runtime stays embeddable).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, ..., "__metadata__": {str: str}}`, then the
 * data section. Offsets are relative to the data section, which tensors must cover exactly
 * (no gaps, no overlaps, nothing after the last tensor). Element bytes are little-endian, row-major.
 */
import { byteSize, type DType } from "../compiler/ir/dtype.js";
import { allocData, f16BitsToF32, f32ToF16Bits, numel, type Tensor } from "../compiler/ir/tensor.js";

/** A malformed file or an unwritable tensor; the message names the file and the problem. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = "SafetensorsError";
  }
}

/** Tensors in header order plus the file's `__metadata__`. */
export class TensorFile extends Map<string, Tensor> {
  readonly metadata = new Map<string, string>();
}

/** Headers beyond this are refused before any allocation (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

type StDType = "F32" | "F16" | "BF16" | "F64" | "I32" | "I64" | "I8" | "U8" | "BOOL";

interface Format {
  readonly dtype: DType;
  readonly size: number;
  readonly read: (dv: DataView, off: number) => number;
}

const TWO_53 = 2n ** 53n;
const bf16Scratch = new DataView(new ArrayBuffer(4));

/** How each stored dtype reads into our dtypes; BF16 widens exactly to f32. */
const FORMATS: Readonly<Record<StDType, Format>> = {
  F32: { dtype: "f32", size: 4, read: (dv, o) => dv.getFloat32(o, true) },
  F16: { dtype: "f16", size: 2, read: (dv, o) => f16BitsToF32(dv.getUint16(o, true)) },
  BF16: {
    dtype: "f32",
    size: 2,
    read: (dv, o) => {
      bf16Scratch.setUint32(0, dv.getUint16(o, true) << 16);
      return bf16Scratch.getFloat32(0);
    },
  },
  F64: { dtype: "f64", size: 8, read: (dv, o) => dv.getFloat64(o, true) },
  I32: { dtype: "i32", size: 4, read: (dv, o) => dv.getInt32(o, true) },
  I64: { dtype: "i64", size: 8, read: (dv, o) => Number(dv.getBigInt64(o, true)) },
  I8: { dtype: "i8", size: 1, read: (dv, o) => dv.getInt8(o) },
  U8: { dtype: "u8", size: 1, read: (dv, o) => dv.getUint8(o) },
  // Any non-zero byte is true; stored as 1 like every other bool in the IR.
  BOOL: { dtype: "bool", size: 1, read: (dv, o) => (dv.getUint8(o) !== 0 ? 1 : 0) },
};

function isStDType(s: string): s is StDType {
  return Object.hasOwn(FORMATS, s);
}

interface Entry {
  readonly name: string;
  readonly format: Format;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

/**
 * Parses a safetensors file held in memory. Every size and offset is checked before use, so a
 * malformed file gives a SafetensorsError (never a crash or an allocation beyond the file's size).
 * Tensors come back in header order; I64 values must lie within ±2^53 to be held as numbers.
 */
export function parseSafetensors(bytes: Uint8Array, name = "<safetensors>"): TensorFile {
  const fail = (problem: string): never => {
    throw new SafetensorsError(name, problem);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (n > bytes.length - 8) fail(`header length ${n} is larger than the ${bytes.length - 8} bytes after it`);
  if (n < 2) fail(`header length ${n} is too small for a JSON object`);

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{"))
    fail(`header does not start with '{' (got ${JSON.stringify(text.slice(0, 10))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(json)) fail("header is not a JSON object");
  const header = json as Record<string, unknown>;
  const scan = scanKeys(text);
  if (scan.duplicate !== undefined)
    fail(
      scan.duplicateDepth === 1
        ? `duplicate tensor name '${scan.duplicate}' in the header`
        : `duplicate key '${scan.duplicate}' in the header`,
    );

  const out = new TensorFile();
  const entries: Entry[] = [];
  for (const key of scan.keys) {
    const info = header[key];
    if (key === "__metadata__") {
      readMetadata(info, out.metadata, fail);
      continue;
    }
    entries.push(readEntry(key, info, fail));
  }

  // The data section must be covered exactly: sort by offsets and walk it.
  const dataLen = bytes.length - 8 - n;
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.end > dataLen)
      fail(
        `tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] run past the ${dataLen}-byte data section`,
      );
    if (e.begin < pos)
      fail(
        `tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${pos})`,
      );
    if (e.begin > pos)
      fail(`gap in the data section: bytes ${pos}..${e.begin} belong to no tensor (before '${e.name}')`);
    pos = e.end;
  }
  if (pos !== dataLen)
    fail(
      `data section has ${dataLen - pos} trailing bytes after the last tensor (ends at ${pos} of ${dataLen})`,
    );

  const base = 8 + n;
  for (const e of entries) out.set(e.name, readTensor(dv, base, e, fail));
  return out;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function readMetadata(info: unknown, into: Map<string, string>, fail: (p: string) => never): void {
  if (!isRecord(info)) fail("__metadata__ is not an object of strings");
  for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
    if (typeof v !== "string") fail(`__metadata__ entry '${k}' is not a string (got ${JSON.stringify(v)})`);
    into.set(k, v as string);
  }
}

function readEntry(name: string, info: unknown, fail: (p: string) => never): Entry {
  if (!isRecord(info)) fail(`tensor '${name}': entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== "string") fail(`tensor '${name}': dtype is missing or not a string`);
  if (!isStDType(dtype as string))
    fail(
      `tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(FORMATS).join(", ")})`,
    );
  const format = FORMATS[dtype as StDType];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0))
    fail(`tensor '${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  const dims = shape as number[];
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  )
    fail(`tensor '${name}': data_offsets ${JSON.stringify(offsets)} are not two non-negative integers`);
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
  const count = numel(dims);
  const bytes = count * format.size;
  if (!Number.isSafeInteger(bytes)) fail(`tensor '${name}': shape [${dims.join(", ")}] is too large`);
  if (end - begin !== bytes)
    fail(
      `tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} [${dims.join(", ")}] needs ${bytes}`,
    );
  return { name, format, shape: dims, begin, end };
}

function readTensor(dv: DataView, base: number, e: Entry, fail: (p: string) => never): Tensor {
  const { format } = e;
  const n = (e.end - e.begin) / format.size;
  const data = allocData(format.dtype, n);
  const start = base + e.begin;
  if (format === FORMATS.I64) {
    for (let i = 0; i < n; i++) {
      const v = dv.getBigInt64(start + 8 * i, true);
      if (v > TWO_53 || v < -TWO_53)
        fail(`tensor '${e.name}': I64 element ${i} (${v}) is beyond ±2^53 and cannot be held exactly`);
      data[i] = Number(v);
    }
  } else {
    for (let i = 0; i < n; i++) data[i] = format.read(dv, start + format.size * i);
  }
  return Object.freeze({ dtype: format.dtype, shape: Object.freeze([...e.shape]), data });
}

/**
 * Top-level keys in file order (JSON.parse reorders integer-like keys) and the first key repeated
 * within one object (JSON.parse silently keeps the last). `text` is known to be valid JSON.
 */
function scanKeys(text: string): { keys: string[]; duplicate?: string; duplicateDepth?: number } {
  const keys: string[] = [];
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const seen = stack[stack.length - 1]!;
        if (seen.has(key)) return { keys, duplicate: key, duplicateDepth: stack.length };
        seen.add(key);
        if (stack.length === 1) keys.push(key);
      }
      expectKey = false;
      i = j;
    } else if (c === "{" || c === "[") {
      stack.push(c === "{" ? new Set() : null);
      expectKey = c === "{";
    } else if (c === "}" || c === "]") stack.pop();
    else if (c === ",") expectKey = stack[stack.length - 1] !== null;
  }
  return { keys };
}

// ---------- writing ----------

interface WriteFormat {
  readonly name: StDType;
  readonly write: (dv: DataView, off: number, x: number) => void;
}

/** How each of our dtypes is stored; nothing is written as BF16. */
const WRITERS: Readonly<Record<DType, WriteFormat>> = {
  f32: { name: "F32", write: (dv, o, x) => dv.setFloat32(o, x, true) },
  f16: { name: "F16", write: (dv, o, x) => dv.setUint16(o, f32ToF16Bits(x), true) },
  f64: { name: "F64", write: (dv, o, x) => dv.setFloat64(o, x, true) },
  i32: { name: "I32", write: (dv, o, x) => dv.setInt32(o, x, true) },
  i64: { name: "I64", write: (dv, o, x) => dv.setBigInt64(o, BigInt(x), true) },
  i8: { name: "I8", write: (dv, o, x) => dv.setInt8(o, x) },
  u8: { name: "U8", write: (dv, o, x) => dv.setUint8(o, x) },
  bool: { name: "BOOL", write: (dv, o, x) => dv.setUint8(o, x !== 0 ? 1 : 0) },
};

export type Metadata = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/**
 * Serialises tensors in the order given (a Map's insertion order), so reading back yields the
 * same order. The header is padded with spaces to a multiple of 8 bytes, which keeps the data
 * section 8-byte aligned. `metadata` defaults to a TensorFile's own metadata.
 */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, Tensor> | readonly (readonly [string, Tensor])[],
  metadata?: Metadata,
  name = "<safetensors>",
): Uint8Array {
  const fail = (problem: string): never => {
    throw new SafetensorsError(name, problem);
  };
  const list: (readonly [string, Tensor])[] = isEntryList(tensors) ? [...tensors] : [...tensors.entries()];
  const meta = metadata ?? (tensors instanceof TensorFile ? tensors.metadata : undefined);

  const parts: string[] = [];
  if (meta !== undefined) {
    const pairs = meta instanceof Map ? [...meta] : Object.entries(meta);
    for (const [k, v] of pairs) if (typeof v !== "string") fail(`metadata '${k}' is not a string`);
    parts.push(`"__metadata__":${jsonObject(pairs.map(([k, v]) => [k, JSON.stringify(v)]))}`);
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const [key, t] of list) {
    if (key === "__metadata__") fail("a tensor may not be named '__metadata__'");
    if (seen.has(key)) fail(`duplicate tensor name '${key}'`);
    seen.add(key);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor '${key}': invalid shape [${t.shape.join(", ")}]`);
    const count = numel(t.shape);
    if (t.data.length !== count)
      fail(`tensor '${key}': ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    if (t.dtype === "i64") {
      for (let i = 0; i < count; i++)
        if (!Number.isInteger(t.data[i]) || Math.abs(t.data[i]) > 2 ** 53)
          fail(`tensor '${key}': i64 element ${i} (${t.data[i]}) is not an integer within ±2^53`);
    }
    const end = offset + count * byteSize(t.dtype);
    const entry = `{"dtype":"${WRITERS[t.dtype].name}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${end}]}`;
    parts.push(`${JSON.stringify(key)}:${entry}`);
    offset = end;
  }
  const headerRaw = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = Math.ceil(headerRaw.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerLen), true);
  out.set(headerRaw, 8);
  out.fill(0x20, 8 + headerRaw.length, 8 + headerLen);

  let pos = 8 + headerLen;
  for (const [, t] of list) {
    const w = WRITERS[t.dtype];
    const size = byteSize(t.dtype);
    for (let i = 0; i < t.data.length; i++) w.write(dv, pos + size * i, t.data[i]);
    pos += size * t.data.length;
  }
  return out;
}

function isEntryList(
  x: ReadonlyMap<string, Tensor> | readonly (readonly [string, Tensor])[],
): x is readonly (readonly [string, Tensor])[] {
  return Array.isArray(x);
}

/** `{"k":v,...}` from already-serialised values, keeping the order (JSON.stringify would not for "0", "1"). */
function jsonObject(pairs: readonly (readonly [string, string])[]): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
}
