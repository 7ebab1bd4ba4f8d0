#!/usr/bin/env node
// Optional build of the CUDA runtime addon (runtime/cuda/addon.cc -> build/cuda/tokr_cuda.node).
// g++ compiles the addon against Node's headers, node-addon-api and the CUDA runtime headers, and
// links libcudart_static.a, so the result needs no CUDA library at load time. Without the CUDA
// toolkit (CUDA_HOME, default /usr/local/cuda) or g++ it prints what is missing and exits 0;
// CUDA_BACKEND_REQUIRED=1 makes that an error (exit 1), SKIP_CUDA_BUILD=1 skips outright.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cuda = process.env.CUDA_HOME ?? "/usr/local/cuda";
const required = process.env.CUDA_BACKEND_REQUIRED === "1";
const out = join(root, "build", "cuda", "tokr_cuda.node");

function skip(why) {
  process.stdout.write(`build-cuda: skipped: ${why}\n`);
  process.exit(required ? 1 : 0);
}

if (process.env.SKIP_CUDA_BUILD === "1") skip("SKIP_CUDA_BUILD=1");
const nodeInclude = join(dirname(dirname(process.execPath)), "include", "node");
const need = [
  [join(cuda, "bin", "nvcc"), "nvcc (the CUDA toolkit; set CUDA_HOME)"],
  [join(cuda, "include", "cuda_runtime.h"), "the CUDA runtime headers"],
  [join(cuda, "lib64", "libcudart_static.a"), "libcudart_static.a"],
  [join(nodeInclude, "node_api.h"), `Node's headers (${nodeInclude})`],
  [join(root, "node_modules", "node-addon-api", "napi.h"), "node-addon-api (npm ci)"],
];
const missing = need.filter(([p]) => !existsSync(p)).map(([p, what]) => `${what} at ${p}`);
if (spawnSync("g++", ["--version"]).status !== 0) missing.push("g++ on PATH");
if (missing.length) skip(`missing ${missing.join("; ")}`);

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const args = [
  "-std=c++17",
  "-O2",
  "-shared",
  "-fPIC",
  "-fvisibility=hidden",
  "-DNAPI_DISABLE_CPP_EXCEPTIONS",
  "-DNAPI_VERSION=8",
  `-I${nodeInclude}`,
  `-I${join(root, "node_modules", "node-addon-api")}`,
  `-I${join(cuda, "include")}`,
  join(root, "runtime", "cuda", "addon.cc"),
  join(cuda, "lib64", "libcudart_static.a"),
  "-ldl",
  "-lpthread",
  "-lrt",
  "-Wl,--exclude-libs,ALL",
  "-o",
  tmp,
];
const t0 = Date.now();
const r = spawnSync("g++", args, { stdio: "inherit" });
if (r.status !== 0) {
  process.stdout.write(`build-cuda: g++ failed (exit ${r.status ?? r.signal})\n`);
  process.exit(required ? 1 : 0);
}
renameSync(tmp, out);
process.stdout.write(`build-cuda: built ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
