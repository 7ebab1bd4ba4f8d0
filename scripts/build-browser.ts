/**
 * Bundles the WebGPU runtime for browsers: runtime/webgpu/browser.ts and everything it imports,
 * from the TypeScript sources, into one ES module (esbuild). A Node built-in import anywhere in
 * that closure fails the build, which keeps the runtime embeddable.
 *
 *   npx tsx scripts/build-browser.ts [OUT]   (default build/browser/tokr-webgpu.js)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { repoRootFrom } from "./paths.js";

/** The browser bundle's entry module. */
export const BROWSER_ENTRY = "runtime/webgpu/browser.ts";

/** Builds the bundle in memory; `minify` for shipping, off for readable stack traces. */
export async function buildBrowserBundle(opts: { minify?: boolean } = {}): Promise<string> {
  const root = repoRootFrom(import.meta.url);
  const r = await build({
    entryPoints: [join(root, BROWSER_ENTRY)],
    absWorkingDir: root,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: opts.minify ?? false,
    write: false,
    logLevel: "silent",
    legalComments: "none",
  });
  return r.outputFiles[0].text;
}

async function main(): Promise<void> {
  const root = repoRootFrom(import.meta.url);
  const out = resolve(process.argv[2] ?? join(root, "build", "browser", "tokr-webgpu.js"));
  const code = await buildBrowserBundle({ minify: true });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, code);
  process.stdout.write(`${out}: ${(code.length / 1024).toFixed(0)} KiB\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main().catch((e: unknown) => {
    process.stderr.write(`build-browser: ${(e as Error).message}\n`);
    process.exit(1);
  });
