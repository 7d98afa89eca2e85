import { spindle } from "./workflows";

/** A bound worker with no slots: its tasks are queued and never start (schedule timeouts, cancelling queued work). */
export const parkedTimeout = spindle.task({ name: "t-ghost-timeout", retries: 2, scheduleTimeout: "60s", fn: () => null });
export const parkedCancel = spindle.task({ name: "t-ghost-cancel", scheduleTimeout: "60s", fn: () => null });
export const parkedWorker = spindle.worker({ name: "parked", slots: 0, durableSlots: 0, workflows: [parkedTimeout, parkedCancel] });
