/**
 * ONNX external data: tensors whose bytes live in a separate file next to the model
 * (`data_location = EXTERNAL`, keys `location`, `offset`, `length`, `checksum`).
 */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import { isAbsolute, join, normalize, relative, sep } from "node:path";
import type { TensorProto } from "./reader.js";

/** Where an external tensor's bytes are: a file under the model's directory and a byte range of it. */
export interface ExternalRef {
  readonly location: string;
  readonly offset: number;
  /** Absent: the tensor's byte size. */
  readonly length?: number;
  /** SHA-1 of the bytes, lower-case hex. */
  readonly checksum?: string;
}

function byteCount(key: string, s: string): number {
  if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new Error(`external data '${key}' is '${s}', not a byte count`);
  return Number(s);
}

/** Parses and checks `external_data`; a file path must stay inside the model's directory. */
export function externalRef(t: TensorProto): ExternalRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  let checksum: string | undefined;
  for (const e of t.externalData ?? []) {
    const key = e.key ?? "";
    const value = e.value ?? "";
    switch (key) {
      case "location":
        location = value;
        break;
      case "offset":
        offset = byteCount(key, value);
        break;
      case "length":
        length = byteCount(key, value);
        break;
      case "checksum":
        if (!/^[0-9a-fA-F]{40}$/.test(value))
          throw new Error(`external data checksum '${value}' is not a SHA-1 digest (40 hex digits)`);
        checksum = value.toLowerCase();
        break;
      default:
        throw new Error(`unknown external data key '${key}'`);
    }
  }
  if (location === undefined || location === "") throw new Error("external data has no 'location'");
  if (isAbsolute(location) || /^[A-Za-z]:/.test(location) || location.startsWith("\\"))
    throw new Error(
      `external data location '${location}' is an absolute path; it must be relative to the model`,
    );
  const norm = normalize(location);
  if (norm === ".." || norm.startsWith(`..${sep}`) || norm.split(/[\\/]/).includes(".."))
    throw new Error(`external data location '${location}' leaves the model's directory`);
  return { location, offset, length, checksum };
}

/**
 * Reads `bytes` bytes of an external tensor into a fresh buffer (so typed arrays can view it without a
 * copy). `dir` is the model's directory; symlinks that lead out of it are refused like `..`.
 */
export function readExternal(ref: ExternalRef, dir: string, bytes: number): Uint8Array {
  if (ref.length !== undefined && ref.length !== bytes)
    throw new Error(
      `external data length is ${ref.length} bytes but the tensor's shape and type need ${bytes}`,
    );
  const path = join(dir, ref.location);
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    throw new Error(`external data file '${ref.location}' does not exist (looked for ${path})`);
  }
  const inside = relative(realpathSync(dir), real);
  if (inside === "" || inside.startsWith("..") || isAbsolute(inside))
    throw new Error(`external data location '${ref.location}' leads outside the model's directory`);
  const fd = openSync(real, "r");
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`external data location '${ref.location}' is not a file`);
    if (ref.offset + bytes > st.size)
      throw new Error(
        `external data range [${ref.offset}, ${ref.offset + bytes}) is past the end of '${ref.location}' (${st.size} bytes)`,
      );
    const out = new Uint8Array(bytes);
    for (let done = 0; done < bytes;) {
      const n = readSync(fd, out, done, bytes - done, ref.offset + done);
      if (n === 0) throw new Error(`'${ref.location}' ended while reading external data`);
      done += n;
    }
    if (ref.checksum !== undefined) {
      const got = createHash("sha1").update(out).digest("hex");
      if (got !== ref.checksum)
        throw new Error(
          `external data checksum mismatch: '${ref.location}' bytes hash to ${got}, expected ${ref.checksum}`,
        );
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
