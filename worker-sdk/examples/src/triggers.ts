import { z } from "zod";
import { spindle } from "./spindle";

// A workflow's output is its tasks' outputs keyed by task name: each task here is named after the
// field it produces, so the run's output is exactly `{ greeted }`, `{ audited, eventKey }`, `{ tickedAt }`.

/** Started by every `user:created` event, the payload as its input. Output: `{ greeted: name }`. */
export const onEvent = spindle.workflow({
  name: "on-event",
  onEvents: ["user:created"],
  input: z.object({ name: z.string() }),
});

onEvent.task({ name: "greeted", fn: (input) => input.name });

/** Started by any `order:` event (`order:created`, `order:paid`...). Output: `{ audited: true, eventKey }`. */
export const orderAudit = spindle.workflow({
  name: "order-audit",
  onEvents: ["order:*"],
});

orderAudit.task({ name: "audited", fn: () => true });
orderAudit.task({ name: "eventKey", fn: (_input, ctx) => ctx.additionalMetadata().eventKey ?? null });

/** Runs every five minutes. Output: `{ tickedAt }`, the tick it ran for (its `scheduledAt`). */
export const onCron = spindle.workflow({
  name: "on-cron",
  onCrons: ["*/5 * * * *"],
});

onCron.task({ name: "tickedAt", fn: (_input, ctx) => ctx.additionalMetadata().scheduledAt ?? new Date().toISOString() });
