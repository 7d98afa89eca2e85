import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { client, freePort, ROOT } from "./dev-server";

/**
 * Spindle as a new team adopts it, outside this repository: the SDK packed as npm publishes it,
 * installed into a fresh project, used from plain Node; and the worker template, copied out,
 * served by its own `wrangler dev` and registered with the engine over HTTPS.
 */
const server = inject("devServer");
const api = client(server);
const BIN = join(ROOT, "node_modules", ".bin");
let work: string;
let tarball: string;

const npm = (args: string[], cwd: string) =>
  execFileSync("npm", [...args, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false" } });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "spindle-adopt-"));
  // dist/ is built (npm install's prepare, npm test's pretest); packing must not rebuild it under
  // the running engine's feet.
  const packed = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", work], join(ROOT, "worker-sdk"))) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, packed[0]!.filename);
  writeFileSync(join(work, "files.json"), JSON.stringify(packed[0]!.files.map((f) => f.path)));
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the packed SDK", () => {
  it("holds only dist/, the README, the license and package.json", () => {
    const files = JSON.parse(execFileSync("cat", [join(work, "files.json")], { encoding: "utf8" })) as string[];
    expect(files).toEqual(expect.arrayContaining(["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/spindle-client.js", "dist/protocol.d.ts", "dist/index.js.map"]));
    expect(files.filter((f) => !/^(dist\/|package\.json$|README\.md$|LICENSE$)/.test(f))).toEqual([]);
    expect(files.some((f) => f.includes("examples") || f.endsWith(".ts") && !f.endsWith(".d.ts"))).toBe(false);
  });

  it("type-checks a user's file in a fresh project and triggers simple from a plain node script, printing its output", () => {
    const project = join(work, "fresh");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "fresh", private: true, type: "module" }));
    npm(["install", tarball, "zod@^4"], project);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "es2022", lib: ["es2022", "dom"], module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, types: [] }, include: ["user.ts"] }),
    );
    writeFileSync(
      join(project, "user.ts"),
      `import { SpindleClient, SpindleError, type Declared, type RunView } from "@spindle/worker-sdk/client";
import type { WorkflowDefinition } from "@spindle/worker-sdk/protocol";

declare const simple: Declared<{ Message: string }, { TransformedMessage: string }>;
export async function main(client: SpindleClient): Promise<string> {
  const out = await client.run(simple, { Message: "Hello" });
  // @ts-expect-error the input's type flows from the declaration
  await client.run(simple, { message: "wrong key" });
  const handle = await client.runNoWait("simple", { Message: "x" });
  const run: RunView = await handle.get();
  const defs: WorkflowDefinition[] = [];
  try {
    await client.runs.cancel(run.runId);
  } catch (err) {
    if (err instanceof SpindleError) return err.code;
  }
  return out.TransformedMessage + defs.length;
}
`,
    );
    execFileSync(join(BIN, "tsc"), ["-p", project], { encoding: "utf8" });
    writeFileSync(
      join(project, "trigger.mjs"),
      `import { SpindleClient } from "@spindle/worker-sdk/client";
const [url, token] = process.argv.slice(2);
const spindle = new SpindleClient({ url, token });
console.log(JSON.stringify(await spindle.run("simple", { Message: "Hello World" })));
`,
    );
    const printed = execFileSync("node", ["trigger.mjs", server.url, server.token], { cwd: project, encoding: "utf8" });
    expect(JSON.parse(printed)).toEqual({ TransformedMessage: "hello world" });
  });

  it("reads a run's stream, defines a rate limit and cancels runs in bulk from a plain node script", () => {
    const project = join(work, "fresh");
    writeFileSync(
      join(project, "more.mjs"),
      `import { SpindleClient } from "@spindle/worker-sdk/client";
const [url, token, tag] = process.argv.slice(2);
const spindle = new SpindleClient({ url, token });
const handle = await spindle.runNoWait("stream", {});
const chunks = [];
for await (const chunk of handle.stream()) chunks.push(chunk);
const limit = await spindle.rateLimits.upsert({ key: "client-" + tag, limit: 7, duration: "minute" });
const listed = (await spindle.rateLimits.list()).find((l) => l.key === "client-" + tag);
// Waits for an event nobody pushes: it is still going when the bulk cancel comes.
const slow = await spindle.runNoWait("durable-event", { userId: tag });
const bulk = await spindle.runs.cancelMany({ runIds: [slow.runId] });
console.log(JSON.stringify({ chunks, output: await handle.result(), limit: limit.limit, listed: listed?.limit, bulk, slow: (await slow.get()).status }));
`,
    );
    const tag = `t${Date.now()}`;
    const printed = JSON.parse(execFileSync("node", ["more.mjs", server.url, server.token, tag], { cwd: project, encoding: "utf8" }));
    expect(printed.chunks).toEqual(Array.from({ length: 10 }, (_, i) => `chunk ${i}`));
    expect(printed.output).toEqual({ chunks: 10 });
    expect(printed.limit).toBe(7);
    expect(printed.listed).toBe(7);
    expect(printed.bulk.affected).toBe(1);
    expect(printed.slow).toBe("CANCELLED");
  });
});

describe("a worker served from plain Node", () => {
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill("SIGKILL"));

  it("serves spindle.serve() from node:http, registers over HTTPS and runs its task", async () => {
    const project = join(work, "fresh");
    const port = await freePort();
    writeFileSync(
      join(project, "serve.mjs"),
      `import { createServer } from "node:http";
import { Spindle } from "@spindle/worker-sdk";
const [port, token] = process.argv.slice(2);
const spindle = Spindle.init({ token });
const hello = spindle.task({ name: "node-hello", fn: (input, ctx) => { ctx.logger.info("hello from node"); return { runtime: "node", got: input }; } });
const worker = spindle.serve({ name: "node-worker", slots: 5, workflows: [hello] });
createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const answer = await worker.fetch(new Request("http://127.0.0.1:" + port + req.url, { method: req.method, headers: req.headers, body: body.length ? body : undefined }));
  res.writeHead(answer.status, Object.fromEntries(answer.headers));
  res.end(Buffer.from(await answer.arrayBuffer()));
}).listen(Number(port), "127.0.0.1", () => console.log("listening"));
`,
    );
    let out = "";
    child = spawn("node", ["serve.mjs", String(port), server.token], { cwd: project, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes("listening")) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`serve.mjs did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const registered = await api.call("POST", "/api/v1/workers", { url: `http://127.0.0.1:${port}/` });
    expect(registered.status).toBe(200);
    expect(registered.body).toMatchObject({ name: "node-worker", transport: "https", status: "active" });
    const run = await api.result(await api.trigger("node-hello", { n: 1 }));
    expect(run.output).toEqual({ runtime: "node", got: { n: 1 } });
    expect(out).toContain("hello from node");
  }, 60_000);
});

describe("the worker template, run beside the engine and registered over HTTPS", () => {
  let worker: ChildProcess | undefined;
  let log = "";
  let url = "";

  afterAll(async () => {
    if (!worker?.pid) return;
    try {
      process.kill(-worker.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  });

  it("installs the packed SDK into a copy of templates/worker and serves it with its own wrangler dev", async () => {
    const dir = join(work, "my-worker");
    cpSync(join(ROOT, "templates", "worker"), dir, { recursive: true });
    expect(readdirSync(dir).sort()).toEqual([".dev.vars.example", "package.json", "src", "tsconfig.json", "wrangler.toml"]);
    // The worker's runtime dependencies; wrangler and TypeScript are this repository's (same versions).
    npm(["install", "--omit=dev", tarball], dir);
    writeFileSync(join(dir, ".dev.vars"), `SPINDLE_API_TOKEN=${server.token}\n`);
    const port = await freePort();
    const registry = join(work, "registry");
    mkdirSync(registry, { recursive: true });
    worker = spawn(
      join(BIN, "wrangler"),
      ["dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(await freePort()), "--persist-to", join(work, "worker-state"), "--show-interactive-dev-session=false"],
      {
        cwd: dir,
        env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, CI: "1", NO_COLOR: "1", WRANGLER_REGISTRY_PATH: registry, WRANGLER_SEND_METRICS: "false" },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    worker.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    worker.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    url = `http://127.0.0.1:${port}/`;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const res = await fetch(url).catch(() => null);
      if (res?.ok) {
        expect(await res.json()).toEqual({ worker: "my-worker", workflows: ["greet", "remind"] });
        break;
      }
      if (worker.exitCode !== null || Date.now() > deadline) throw new Error(`the template's wrangler dev did not come up:\n${log}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Unsigned, the worker does nothing.
    expect((await fetch(url, { method: "POST", body: JSON.stringify({ op: "describe" }) })).status).toBe(401);
  }, 180_000);

  it("registers with POST /api/v1/workers and runs its task and its durable task across a sleep", async () => {
    const registered = await api.call("POST", "/api/v1/workers", { url });
    expect(registered.status).toBe(200);
    expect(registered.body).toMatchObject({ name: "my-worker", transport: "https", status: "active", url, workflows: [{ name: "greet", status: "active" }, { name: "remind", status: "active" }] });

    const greet = await api.result(await api.trigger("greet", { name: "Ada" }));
    expect(greet.output).toEqual({ greeting: "Hello, Ada!" });
    // ctx.logger goes to the worker's own console too.
    expect(log).toContain("greeting Ada");

    const remind = await api.result(await api.trigger("remind", { name: "Ada", afterSeconds: 2 }));
    expect(remind.status).toBe("COMPLETED");
    expect(remind.output.reminder).toMatch(/^Ada, it is time \(waiting since \d{4}-/);
    expect(remind.tasks[0].invocations).toBe(2);
    expect(remind.tasks[0].eventLog.map((c: any) => c.kind)).toEqual(["memo", "sleep"]);

    const workers = await api.call("GET", "/api/v1/workers");
    expect(workers.body.workers.find((w: any) => w.name === "my-worker")).toMatchObject({ status: "active", transport: "https", lastSeenAt: expect.any(String) });
    // Its input schema is the engine's to check.
    const bad = await api.call("POST", "/api/v1/workflows/greet/runs", { input: { nom: "x" } });
    expect(bad.status).toBe(400);
  }, 120_000);
});
