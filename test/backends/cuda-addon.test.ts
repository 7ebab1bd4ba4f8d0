import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CUDA_ADDON_PATH, CudaUnavailableError, loadCudaAddon } from "../../runtime/cuda/loader.js";
import { repoRoot, skipUnlessRequired } from "../util/helpers.js";

// The runtime addon: optional build, loads without a GPU or driver, and reports a missing device
// as a JS error (ERR_NO_CUDA_DEVICE), never a crash.

const script = join(repoRoot, "scripts", "build-cuda.js");

test("cuda addon: build-cuda.js skips cleanly (exit 0) without a toolkit", () => {
  const r = spawnSync(process.execPath, [script], {
    encoding: "utf8",
    env: { ...process.env, CUDA_HOME: "/nonexistent-cuda", CUDA_BACKEND_REQUIRED: "" },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /skipped: missing nvcc/);
  const req = spawnSync(process.execPath, [script], {
    encoding: "utf8",
    env: { ...process.env, CUDA_HOME: "/nonexistent-cuda", CUDA_BACKEND_REQUIRED: "1" },
  });
  assert.equal(req.status, 1);
});

test("cuda addon: a missing build is a clear ERR_CUDA_NOT_BUILT", () => {
  assert.throws(
    () => loadCudaAddon(join(repoRoot, "build", "cuda", "no-such-addon.node")),
    (e: unknown) =>
      e instanceof CudaUnavailableError &&
      e.code === "ERR_CUDA_NOT_BUILT" &&
      /build-cuda\.js/.test(e.message),
  );
});

const built = (): string | false => {
  if (existsSync(CUDA_ADDON_PATH)) return false;
  const r = spawnSync(process.execPath, [script], { encoding: "utf8" });
  if (existsSync(CUDA_ADDON_PATH)) return false;
  return `addon not built: ${r.stdout.trim()}`;
};
const skip = skipUnlessRequired(built());
if (skip) console.log(`# skipping addon load tests: ${skip}`);

test("cuda addon: loads and reports no device as ERR_NO_CUDA_DEVICE (twice, process alive)", { skip }, () => {
  const addon = loadCudaAddon();
  assert.ok(addon.runtimeVersion() >= 12000);
  let gpu = false;
  for (let i = 0; i < 2; i++) {
    try {
      assert.ok(addon.deviceCount() > 0);
      gpu = true;
    } catch (e) {
      const err = e as Error & { code?: string; cudaError?: number };
      assert.equal(err.code, "ERR_NO_CUDA_DEVICE");
      assert.match(err.message, /no CUDA device/);
      assert.ok([35, 100].includes(err.cudaError ?? -1), `cudaError ${err.cudaError}`);
    }
  }
  if (!gpu) {
    assert.throws(() => addon.alloc(16), { code: "ERR_NO_CUDA_DEVICE" });
    assert.throws(() => addon.loadModule(new Uint8Array(8)), { code: "ERR_NO_CUDA_DEVICE" });
  }
});
