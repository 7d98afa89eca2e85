import { env } from "cloudflare:workers";
import { Spindle, type Runnable } from "@spindle/worker-sdk";
import { count, effects } from "./workflows";

/**
 * The transport conformance workflows: the same scenarios declared twice, once for a worker the
 * engine reaches through a service binding (`conf-binding`) and once for one served over HTTPS
 * (`conf-https`, reached through the engine's HTTPS_OUTBOUND, calling back through ENGINE_HTTP:
 * real signed HTTP requests, carried by bindings instead of sockets).
 */
export const conformanceInFlight = new Map<string, { now: number; max: number }>();

function scenarios(spindle: Spindle, prefix: string): Runnable<any, any>[] {
  const slots = spindle.task({
    name: `${prefix}-slots`,
    fn: async (input: { ms: number }) => {
      const c = conformanceInFlight.get(prefix) ?? { now: 0, max: 0 };
      conformanceInFlight.set(prefix, c);
      c.now++;
      c.max = Math.max(c.max, c.now);
      await new Promise((r) => setTimeout(r, input.ms));
      c.now--;
      return { ok: true };
    },
  });
  const timeout = spindle.task({
    name: `${prefix}-timeout`,
    executionTimeout: "1s",
    fn: async (_input: unknown, ctx) => {
      count(`${prefix}-timeout:start`);
      await new Promise<void>((resolve) => ctx.abortSignal.addEventListener("abort", () => resolve()));
      count(`${prefix}-timeout:aborted`);
      return { late: true };
    },
  });
  const heartbeat = spindle.task({
    name: `${prefix}-heartbeat`,
    executionTimeout: "30s",
    fn: async (input: { ms: number }) => {
      await new Promise((r) => setTimeout(r, input.ms));
      return { slept: input.ms };
    },
  });
  const cancel = spindle.task({
    name: `${prefix}-cancel`,
    executionTimeout: "30s",
    fn: async (input: { tag: string }, ctx) => {
      count(`${prefix}-cancel:${input.tag}:start`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20_000);
        ctx.abortSignal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (ctx.abortSignal.aborted) count(`${prefix}-cancel:${input.tag}:aborted`);
      return null;
    },
  });
  const durable = spindle.durableTask({
    name: `${prefix}-durable`,
    fn: async (input: { tag: string }, ctx) => {
      count(`${prefix}-durable:${input.tag}:invocation`);
      const first = await ctx.memo("first", async () => count(`${prefix}-durable:${input.tag}:memo`));
      await ctx.sleepFor("1s");
      ctx.logger.info(`${prefix} woke`);
      return { first };
    },
  });
  // Puts three chunks and logs a line, then waits (polling: the test opens the gate from its own
  // request) until the test has seen both while the task still runs.
  const stream = spindle.task({
    name: `${prefix}-stream`,
    executionTimeout: "30s",
    fn: async (input: { tag: string }, ctx) => {
      for (const chunk of ["a", "b", "c"]) await ctx.putStream(chunk);
      ctx.logger.info(`${prefix} live line`);
      while (!effects.has(`${prefix}-stream:${input.tag}:go`) && !ctx.abortSignal.aborted) await new Promise((r) => setTimeout(r, 20));
      await ctx.putStream("d");
      return { chunks: 4 };
    },
  });
  return [slots, timeout, heartbeat, cancel, durable, stream];
}

const bound = Spindle.init();
export const conformanceBindingWorker = bound.worker({ name: "conf-binding", slots: 2, workflows: scenarios(bound, "cb") });

// The served worker reaches the engine over HTTP: through the ENGINE_HTTP binding, here.
const engineFetch: typeof fetch = (input, init) => (env as unknown as { ENGINE_HTTP: Fetcher }).ENGINE_HTTP.fetch(new Request(input, init));
const served = Spindle.init({ token: "test-token-default", fetch: engineFetch });
export const conformanceHttpsWorker = served.serve({ name: "conf-https", slots: 2, workflows: scenarios(served, "ch") });

/** A served worker holding another token: the engine's signature is not its tenant's. */
const stranger = Spindle.init({ token: "a-token-of-no-tenant-at-all", fetch: engineFetch });
export const strangerWorker = stranger.serve({ name: "stranger", workflows: [stranger.task({ name: "t-stranger", fn: () => null })] });

/** Two served workers declaring `t-shared` the same way, and a third declaring it differently. */
function sharing(name: string, timeout: string) {
  const s = Spindle.init({ token: "test-token-default", fetch: engineFetch });
  const shared = s.task({ name: "t-shared", executionTimeout: timeout, fn: () => ({ ranOn: name }) });
  const own = s.task({ name: `t-own-${name}`, fn: () => ({ ranOn: name }) });
  return s.serve({ name, slots: 5, workflows: [shared, own] });
}
export const sharingWorkers: Record<string, { fetch(request: Request): Promise<Response> }> = {
  "share-a.test": sharing("share-a", "10s"),
  "share-b.test": sharing("share-b", "10s"),
  "share-c.test": sharing("share-c", "20s"),
};

/**
 * Two served workers sharing `t-shared-sharded`: one serves each pool by 2 task queues (4 slots),
 * the other by 1 (1 slot). Each counts the attempts it runs at once.
 */
export const shardedSharingInFlight = new Map<string, { now: number; max: number; ran: number }>();
function shardedSharing(name: string, slots: number, queueShards: number) {
  const s = Spindle.init({ token: "test-token-default", fetch: engineFetch });
  const shared = s.task({
    name: "t-shared-sharded",
    fn: async (input: { ms: number }) => {
      const c = shardedSharingInFlight.get(name) ?? { now: 0, max: 0, ran: 0 };
      shardedSharingInFlight.set(name, c);
      c.now++;
      c.ran++;
      c.max = Math.max(c.max, c.now);
      await new Promise((r) => setTimeout(r, input.ms));
      c.now--;
      return { ranOn: name };
    },
  });
  return s.serve({ name, slots, queueShards, workflows: [shared] });
}
sharingWorkers["share-sharded.test"] = shardedSharing("share-sharded", 4, 2);
sharingWorkers["share-single.test"] = shardedSharing("share-single", 1, 1);

/** A bound worker holding a token no tenant has. */
const strangerBound = Spindle.init({ token: "a-token-of-no-tenant-at-all" });
export const strangerBoundWorker = strangerBound.worker({ name: "stranger-bound", workflows: [strangerBound.task({ name: "t-stranger-bound", fn: () => null })] });

/** A served worker the tests can take down and bring back (`flaky.down`). */
export const flaky = { down: false };
const flakyServed = Spindle.init({ token: "test-token-default", fetch: engineFetch });
const flakyWorker = flakyServed.serve({
  name: "flaky",
  workflows: [flakyServed.task({ name: "t-flaky-served", retries: 8, backoff: { factor: 1, maxSeconds: 1 }, fn: () => ({ ok: true }) })],
});
sharingWorkers["flaky.test"] = {
  fetch: (request) => (flaky.down ? Promise.resolve(new Response("down for a deploy", { status: 503 })) : flakyWorker.fetch(request)),
};
