import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root above a module, whether it runs from source (tsx) or from dist/. */
export function repoRootFrom(moduleUrl: string): string {
  let d = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    if (up === d) throw new Error("package.json not found");
    d = up;
  }
  return d;
}
