/**
 * Runs a page in headless Chromium against a local HTTP server (node:http on 127.0.0.1, random
 * port). The page reports back by POSTing to the server (`/result` bytes or `/error` text, and
 * `/log` progress lines that errors quote), so no
 * DevTools client is needed. Chromium gets WebGPU on a GPU-less machine from its bundled
 * SwiftShader (Vulkan on the CPU) with `--enable-unsafe-webgpu` alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, extname, join, normalize, sep } from "node:path";

const NAMES = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"];

/** The Chromium executable: $TOKR_CHROMIUM, else the first of NAMES on PATH; undefined if none. */
export function findChromium(): string | undefined {
  const env = process.env.TOKR_CHROMIUM;
  if (env) return env;
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter((d) => d))
    for (const n of NAMES) {
      const p = join(dir, n);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  return undefined;
}

/** Flags for a throwaway headless Chromium with WebGPU (root in containers needs --no-sandbox). */
export const CHROMIUM_FLAGS = [
  "--headless=new",
  "--enable-unsafe-webgpu",
  "--no-sandbox",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-extensions",
  "--disable-dev-shm-usage",
];

/** What the page sent: `/result` bytes, or an `/error` message. */
export type PageOutcome = { result: Uint8Array } | { error: string };

export interface PageRun {
  /** The page's HTML (served at `/`). */
  readonly html: string;
  /** In-memory files by URL path (e.g. `/tokr-webgpu.js`). */
  readonly files: ReadonlyMap<string, Uint8Array | string>;
  /** Directories served under a URL prefix (e.g. `/art/` -> an artifact directory). */
  readonly dirs?: ReadonlyMap<string, string>;
  readonly timeoutMs: number;
}

const TYPES: Record<string, string> = {
  ".js": "text/javascript",
  ".json": "application/json",
  ".wgsl": "text/plain",
};

function body(req: IncomingMessage): Promise<Uint8Array> {
  return new Promise((ok, fail) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => ok(new Uint8Array(Buffer.concat(parts))));
    req.on("error", fail);
  });
}

/** A running local server: its base URL, the page's first report, and how to close it. */
export interface PageServer {
  readonly url: string;
  readonly outcome: Promise<PageOutcome>;
  /** The page's `/log` lines so far. */
  readonly progress: readonly string[];
  close(): Promise<void>;
}

/** Serves the page and its files on 127.0.0.1 (random port); the page reports by POST. */
export async function servePage(run: Omit<PageRun, "timeoutMs">): Promise<PageServer> {
  let settle: (o: PageOutcome) => void = () => {};
  const outcome = new Promise<PageOutcome>((ok) => (settle = ok));
  const progress: string[] = [];
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    if (req.method === "POST" && (path === "/result" || path === "/error")) {
      const b = await body(req);
      res.end();
      settle(path === "/result" ? { result: b } : { error: new TextDecoder().decode(b) });
      return;
    }
    if (req.method === "POST" && path === "/log") {
      progress.push(new TextDecoder().decode(await body(req)));
      res.end();
      return;
    }
    let data: Uint8Array | string | undefined = path === "/" ? run.html : run.files.get(path);
    for (const [prefix, dir] of run.dirs ?? [])
      if (data === undefined && path.startsWith(prefix)) {
        const file = normalize(join(dir, path.slice(prefix.length)));
        if (file.startsWith(dir + sep) && statSync(file, { throwIfNoEntry: false })?.isFile())
          data = readFileSync(file);
      }
    if (data === undefined) {
      res.writeHead(404).end(`not found: ${path}`);
      return;
    }
    const type = path === "/" ? "text/html" : (TYPES[extname(path)] ?? "application/octet-stream");
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(data);
  };
  const server = createServer((req, res) => {
    serve(req, res).catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    outcome,
    progress,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

/** Serves the page, opens it in Chromium, and resolves with what the page POSTs first (and its log). */
export async function runPage(
  chromium: string,
  run: PageRun,
): Promise<PageOutcome & { readonly progress: readonly string[] }> {
  const server = await servePage(run);
  const profile = mkdtempSync(join(tmpdir(), "tokr-chromium-"));
  let log = "";
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    child = spawn(chromium, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, server.url], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true, // its own process group: the browser's helper processes end with it
    });
    child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
    const exited = new Promise<PageOutcome>((ok) => {
      child!.on("error", (e) => ok({ error: `cannot start ${chromium}: ${e.message}` }));
      child!.on("exit", (code, sig) =>
        ok({
          error: `${chromium} exited (${code ?? sig}) before the page reported${said(server.progress)}${tail(log)}`,
        }),
      );
    });
    const late = new Promise<PageOutcome>((ok) => {
      timer = setTimeout(
        () =>
          ok({
            error: `the page did not report within ${run.timeoutMs} ms${said(server.progress)}${tail(log)}`,
          }),
        run.timeoutMs,
      );
    });
    return { ...(await Promise.race([server.outcome, exited, late])), progress: server.progress };
  } finally {
    clearTimeout(timer);
    await stop(child);
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** What the page logged, for errors. */
function said(progress: readonly string[]): string {
  return progress.length ? `; the page logged: ${progress.join("; ")}` : "; the page logged nothing";
}

/** Chromium's last log lines without the D-Bus noise of a machine with no session bus. */
function tail(log: string): string {
  const lines = log.split("\n").filter((l) => l.trim() && !/dbus|DBus/.test(l));
  return lines.length ? `; chromium log:\n${lines.slice(-15).join("\n")}` : "";
}

/** Ends the browser's process group (SIGTERM, then SIGKILL after 3 s) and waits for the exit. */
async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((ok) => child.once("exit", () => ok()));
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  kill("SIGTERM");
  const t = setTimeout(() => kill("SIGKILL"), 3000);
  await gone;
  clearTimeout(t);
}
