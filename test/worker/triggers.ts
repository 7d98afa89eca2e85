import { z } from "zod";
import { spindle } from "./workflows";

/** Workflows that events start, for the trigger tests. */
export const trGreet = spindle.task({
  name: "tr-greet",
  onEvents: ["tr:user:created"],
  input: z.object({ name: z.string() }),
  fn: (input) => ({ greeted: input.name }),
});

export const trOrders = spindle.task({
  name: "tr-orders",
  onEvents: ["tr:order:*"],
  fn: (input: unknown, ctx) => ({ input, metadata: ctx.additionalMetadata() }),
});

/** Also started by `tr:order:paid`, next to tr-orders: one event, two runs. */
export const trPaid = spindle.workflow({ name: "tr-paid", onEvents: ["tr:order:paid"] });
trPaid.task({ name: "book", fn: (_input, ctx) => ({ eventKey: ctx.additionalMetadata().eventKey }) });

/** Filters are created by the tests; the run shows which filter payload let it through. */
export const trFiltered = spindle.task({
  name: "tr-filtered",
  onEvents: ["tr:filtered"],
  fn: (input: unknown, ctx) => ({ input, filterPayload: ctx.filterPayload() ?? null }),
});

/** Declares its filter with the code: only VIP events start it. */
export const trDefaultFiltered = spindle.durableTask({
  name: "tr-default-filtered",
  onEvents: ["tr:vip"],
  defaultFilters: [{ expression: "input.tier == payload.tier", payload: { tier: "vip" } }],
  fn: (input: unknown, ctx) => ({ input, filterPayload: ctx.filterPayload() ?? null }),
});

export const triggerWorkflows = [trGreet, trOrders, trPaid, trFiltered, trDefaultFiltered];
