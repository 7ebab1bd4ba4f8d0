#!/usr/bin/env node
// `npm test`: typecheck+build, lint, format check, then every test under dist/test with node's runner.
// Extra arguments are test-name filters passed to --test-name-pattern.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

function step(title, cmd, args) {
  process.stdout.write(`\n== ${title}: ${cmd} ${args.join(" ")}\n`);
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) {
    process.stdout.write(`\n${title} failed (exit ${r.status ?? r.signal})\n0 passed, 1 failed\n`);
    process.exit(1);
  }
}

function findTests(dir, out = []) {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (e.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}

const bin = (name) => join("node_modules", ".bin", name);
rmSync("dist", { recursive: true, force: true }); // no stale compiled tests
step("typecheck + build", bin("tsc"), ["-p", "tsconfig.json"]);
if (!process.env.TOKR_SKIP_LINT) {
  step("lint", bin("eslint"), ["."]);
  step("format", bin("prettier"), ["--check", "."]);
}
const files = findTests(join("dist", "test"));
const filters = process.argv.slice(2).flatMap((p) => ["--test-name-pattern", p]);
const tap = join("dist", "test-results.tap");
const r = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    "--test-reporter=tap",
    `--test-reporter-destination=${tap}`,
    "--test-concurrency=2",
    ...filters,
    ...files,
  ],
  { stdio: "inherit" },
);
// A plain closing line for CI readers, from the TAP summary.
const summary = existsSync(tap) ? readFileSync(tap, "utf8") : "";
const count = (k) => Number((summary.match(new RegExp(`^# ${k} (\\d+)$`, "m")) ?? [])[1] ?? 0);
process.stdout.write(`\n${count("pass")} passed, ${count("fail")} failed, ${count("skipped")} skipped\n`);
process.exit(r.status === 0 && count("fail") === 0 ? 0 : 1);
