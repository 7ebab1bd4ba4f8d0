/** Node-only file helpers around runtime/safetensors.ts (kept apart so the parser stays embeddable). */
import { readFileSync, writeFileSync } from "node:fs";
import type { Tensor } from "../compiler/ir/tensor.js";
import {
  type Metadata,
  parseSafetensors,
  SafetensorsError,
  serializeSafetensors,
  type TensorFile,
} from "./safetensors.js";

/** Reads and parses a safetensors file; an unreadable file is a SafetensorsError too. */
export function readSafetensorsFile(path: string): TensorFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new SafetensorsError(path, `cannot read file: ${(e as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

/** Serialises tensors (in the order given) and writes them to `path`. */
export function writeSafetensorsFile(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | readonly (readonly [string, Tensor])[],
  metadata?: Metadata,
): void {
  const bytes = serializeSafetensors(tensors, metadata, path);
  try {
    writeFileSync(path, bytes);
  } catch (e) {
    throw new SafetensorsError(path, `cannot write file: ${(e as Error).message}`);
  }
}
