import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface DevServer {
  url: string;
  port: number;
  token: string;
  output: () => string;
  stop: () => Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Starts the engine and the example worker exactly as `npm start` does, on a free port and fresh state. */
export async function startDevServer(): Promise<DevServer> {
  const port = await freePort();
  const state = mkdtempSync(join(tmpdir(), "spindle-e2e-"));
  let log = "";
  const child: ChildProcess = spawn(process.execPath, ["scripts/start.mjs", "--port", String(port), "--persist-to", state], {
    cwd: ROOT,
    env: { ...process.env, CI: "1", NO_COLOR: "1" },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        /* already gone */
      }
      await new Promise((r) => {
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            /* gone */
          }
          r(undefined);
        }, 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          r(undefined);
        });
      });
    }
    rmSync(state, { recursive: true, force: true });
  };
  const deadline = Date.now() + 150_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${log}`);
    try {
      const res = await fetch(`${url}/`);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within 150 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  const token = /^SPINDLE_API_TOKEN=(.*)$/m.exec(readFileSync(join(ROOT, ".dev.vars"), "utf8"))![1]!.trim();
  return { url, port, token, output: () => log, stop };
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
