import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface DevServer {
  url: string;
  port: number;
  token: string;
  /** Holds `state/` (what `--persist-to` gets) and `registry/` (its private wrangler dev registry). */
  dir: string;
  output: () => string;
  /** Ends the stack gracefully and deletes `dir`. */
  stop: () => Promise<void>;
  /** SIGKILLs every process of the stack (node, wrangler, workerd) at once and keeps `dir`. */
  kill: () => Promise<void>;
}

export interface DevServerOptions {
  /** A `dir` of a stack that was killed: the new stack runs on its state (a restart). */
  dir?: string;
  /** Defaults to a free port. */
  port?: number;
  /** More arguments for `wrangler dev` (e.g. `--var NAME:value`). */
  args?: string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the engine and the example worker exactly as `npm start` does, on 127.0.0.1, in its own
 * process group, with its own dev registry (so two stacks on one machine never bind to each other's
 * workers) and its own inspector port.
 */
export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "spindle-e2e-"));
  const state = join(dir, "state");
  const registry = join(dir, "registry");
  mkdirSync(registry, { recursive: true });
  let log = "";
  const args = ["scripts/start.mjs", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", state, ...(options.args ?? [])];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      // The project's Node 22 for wrangler (it needs >= 22.12), whatever `node` is first on PATH.
      PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`,
      CI: "1",
      NO_COLOR: "1",
      WRANGLER_REGISTRY_PATH: registry,
    },
    detached: true, // its own process group: kill() and stop() reach wrangler and workerd too
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const pgid = child.pid!;

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pgid, signal);
    } catch {
      /* already gone */
    }
  };
  /**
   * Waits until no process of the group is left, SIGKILLing it after `graceMs`. Bounded: where
   * nothing reaps orphans, a dead workerd may linger as a zombie (it holds no port or file).
   */
  const reap = async (graceMs: number) => {
    const killAt = Date.now() + graceMs;
    const giveUpAt = killAt + 10_000;
    while (groupAlive(pgid) && Date.now() < giveUpAt) {
      if (Date.now() > killAt) signalGroup("SIGKILL");
      await sleep(100);
    }
  };
  const kill = async () => {
    signalGroup("SIGKILL");
    await reap(0);
  };
  const stop = async () => {
    signalGroup("SIGTERM");
    await reap(10_000);
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 150_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`npm start exited with ${child.exitCode}:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(5_000) });
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within 150 s:\n${log}`);
    }
    await sleep(500);
  }
  const token = /^SPINDLE_API_TOKEN=(.*)$/m.exec(readFileSync(join(ROOT, ".dev.vars"), "utf8"))![1]!.trim();
  return { url, port, token, dir, output: () => log, stop, kill };
}

export function client(server: Pick<DevServer, "url" | "token">) {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return {
    call,
    async trigger(workflow: string, input: unknown): Promise<string> {
      const res = await call("POST", `/api/v1/workflows/${workflow}/runs`, { input });
      if (res.status !== 202) throw new Error(`trigger ${workflow}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.runId;
    },
    async result(runId: string, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const res = await call("GET", `/api/v1/runs/${runId}/result?wait=20`);
        if (res.status === 200) return res.body;
        if (res.status !== 202) throw new Error(`result ${runId}: ${res.status} ${JSON.stringify(res.body)}`);
        if (Date.now() > deadline) throw new Error(`run ${runId} still ${res.body.status}`);
      }
    },
  };
}
