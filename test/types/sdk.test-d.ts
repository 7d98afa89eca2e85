/**
 * Type tests: what the SDK infers for users. Checked by `npm run typecheck` (tsc), never run.
 */
import { expectTypeOf } from "vitest";
import { z } from "zod";
import { ConcurrencyLimitStrategy, Or, Spindle, type Context, type DurableContext, type RateLimitView, type RunRef } from "@spindle/worker-sdk";
import { SpindleClient, type RunHandle } from "@spindle/worker-sdk/client";

const spindle = Spindle.init({ token: "t", env: {} });

// A task's input comes from its zod schema, its output from its function.
const lower = spindle.task({
  name: "lower",
  input: z.object({ Message: z.string(), times: z.number().optional() }),
  fn: (input, ctx) => {
    expectTypeOf(input).toEqualTypeOf<{ Message: string; times?: number | undefined }>();
    expectTypeOf(ctx).toEqualTypeOf<Context<{ Message: string; times?: number | undefined }>>();
    return { TransformedMessage: input.Message.toLowerCase() };
  },
});
expectTypeOf(lower.run).parameter(0).toEqualTypeOf<{ Message: string; times?: number | undefined }>();
expectTypeOf(lower.run).returns.resolves.toEqualTypeOf<{ TransformedMessage: string }>();
expectTypeOf(lower.runNoWait).returns.resolves.toEqualTypeOf<RunRef<{ TransformedMessage: string }>>();
expectTypeOf(lower.runMany).returns.resolves.toEqualTypeOf<{ TransformedMessage: string }[]>();
// @ts-expect-error: the input must match the schema
void lower.run({ message: "lower-case key" });
// runMany derives one idempotency key per item, from the typed input.
void lower.runMany([{ Message: "a" }], { idempotencyKey: (input, i) => `${input.Message}-${i}` });
// @ts-expect-error: one string would be one key for every item
void lower.runMany([{ Message: "a" }], { idempotencyKey: "one" });

// A DAG task's parents' outputs are typed where they are read.
const dag = spindle.workflow({ name: "dag", input: z.object({ n: z.number() }) });
const first = dag.task({ name: "first", fn: (input) => ({ doubled: input.n * 2 }) });
dag.task({
  name: "second",
  parents: [first],
  fn: (_input, ctx) => {
    expectTypeOf(ctx.parentOutput(first)).toEqualTypeOf<{ doubled: number }>();
    return ctx.parentOutput(first).doubled + 1;
  },
});

// A durable task gets a DurableContext; its waits and memos are typed.
spindle.durableTask({
  name: "durable",
  input: z.object({ userId: z.string() }),
  fn: async (input, ctx) => {
    expectTypeOf(ctx).toEqualTypeOf<DurableContext<{ userId: string }>>();
    expectTypeOf(await ctx.sleepFor("1h")).toEqualTypeOf<{ durationMs: number }>();
    expectTypeOf(await ctx.memo(() => 42)).toEqualTypeOf<number>();
    expectTypeOf(await ctx.memo(async () => "x", [input.userId])).toEqualTypeOf<string>();
    expectTypeOf(await ctx.memo("charge", () => ({ id: "ch_1" }))).toEqualTypeOf<{ id: string }>();
    expectTypeOf(await ctx.memo("charge", async () => 7, [input.userId])).toEqualTypeOf<number>();
    // @ts-expect-error a name needs a function after it
    void ctx.memo("charge");
    // @ts-expect-error deps are an array
    void ctx.memo("charge", () => 1, "not deps");
    expectTypeOf(await ctx.waitForEvent<{ approved: boolean }>("approval")).toEqualTypeOf<{ approved: boolean }>();
    expectTypeOf(await ctx.waitFor([Or({ eventKey: "a" }, { sleepFor: "10s" })])).toEqualTypeOf<Record<string, unknown>>();
    expectTypeOf(await ctx.runChild(lower, { Message: "x" })).toEqualTypeOf<{ TransformedMessage: string }>();
    expectTypeOf(await ctx.spawnChildren([{ task: lower, input: { Message: "x" } }])).toEqualTypeOf<{ TransformedMessage: string }[]>();
    expectTypeOf(await ctx.now()).toEqualTypeOf<Date>();
    return { ok: true };
  },
});

// Schedules and crons take the runnable's typed input, like a run.
expectTypeOf(lower.schedule).parameter(1).toEqualTypeOf<{ Message: string; times?: number | undefined }>();
expectTypeOf(lower.delay).parameter(1).toEqualTypeOf<{ Message: string; times?: number | undefined }>();
expectTypeOf(lower.cron).parameter(2).toEqualTypeOf<{ Message: string; times?: number | undefined }>();
// @ts-expect-error: a cron's input must match the schema too
void lower.cron("hourly", "@hourly", { message: "lower-case key" });
// Trigger options on workflows and tasks.
spindle.workflow({ name: "on-signup", onEvents: ["user:created"], defaultFilters: [{ expression: "input.ok", scope: "s", payload: { p: 1 } }] });
spindle.task({ name: "nightly", onCrons: ["0 3 * * *"], cronInput: {}, fn: (_input, ctx) => ctx.filterPayload<{ p: number }>()?.p });
// Flow control: strategies are a closed set; a static and a dynamic rate limit have their own shapes.
spindle.task({
  name: "flow-typed",
  concurrency: [{ expression: "input.user", maxRuns: "input.pro ? 5 : 1", limitStrategy: ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS }, { expression: "'global'", maxRuns: 10 }],
  rateLimits: [{ staticKey: "api" }, { dynamicKey: "input.user", units: 1, limit: 10, duration: "minute" }],
  slotCost: 2,
  fn: () => null,
});
// @ts-expect-error: not a strategy
spindle.task({ name: "flow-bad", concurrency: { expression: "'k'", maxRuns: 1, limitStrategy: "FIFO" }, fn: () => null });
// @ts-expect-error: a dynamic key needs its limit and duration
spindle.task({ name: "flow-bad-2", rateLimits: [{ dynamicKey: "'k'", units: 1 }], fn: () => null });
expectTypeOf(spindle.rateLimits.list).returns.resolves.toEqualTypeOf<RateLimitView[]>();
// The client (any runtime) takes a declared task and keeps its input and output types; a name is untyped.
const client = new SpindleClient({ url: "http://localhost:8787", token: "t" });
expectTypeOf(client.run(lower, { Message: "x" })).toEqualTypeOf<Promise<{ TransformedMessage: string }>>();
expectTypeOf(client.runNoWait(lower, { Message: "x" })).toEqualTypeOf<Promise<RunHandle<{ TransformedMessage: string }>>>();
// @ts-expect-error the input must match the task's schema
void client.run(lower, { message: "x" });
expectTypeOf(client.run("lower", { anything: 1 })).toEqualTypeOf<Promise<unknown>>();
