import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";

/** Images of an IDX file (`.gz` or raw): magic 0x803, count, rows, cols, then bytes. */
export interface IdxImages {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  readonly pixels: Uint8Array;
}

function readMaybeGz(path: string): Buffer {
  const raw = readFileSync(path);
  return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
}

export function readIdxImages(path: string): IdxImages {
  const b = readMaybeGz(path);
  if (b.length < 16 || b.readUInt32BE(0) !== 0x803) throw new Error(`${path}: not an IDX image file`);
  const [count, rows, cols] = [b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12)];
  if (b.length !== 16 + count * rows * cols)
    throw new Error(`${path}: expected ${count}x${rows}x${cols} bytes after the header`);
  return { count, rows, cols, pixels: new Uint8Array(b.buffer, b.byteOffset + 16, count * rows * cols) };
}

export function readIdxLabels(path: string): Uint8Array {
  const b = readMaybeGz(path);
  if (b.length < 8 || b.readUInt32BE(0) !== 0x801) throw new Error(`${path}: not an IDX label file`);
  const count = b.readUInt32BE(4);
  if (b.length !== 8 + count) throw new Error(`${path}: expected ${count} labels`);
  return new Uint8Array(b.buffer, b.byteOffset + 8, count);
}

/** Images [start, start+n) as the model's normalised input f32[n, 1, rows, cols]. */
export function fmnistBatch(imgs: IdxImages, start: number, n: number): Tensor {
  const size = imgs.rows * imgs.cols;
  const out = new Float32Array(n * size);
  for (let i = 0; i < n * size; i++) out[i] = (imgs.pixels[start * size + i] / 255 - 0.286) / 0.353;
  return makeTensor("f32", [n, 1, imgs.rows, imgs.cols], out);
}

export function argmaxRows(t: Tensor): number[] {
  const [n, c] = t.shape;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (t.data[i * c + j] > t.data[i * c + best]) best = j;
    out.push(best);
  }
  return out;
}
