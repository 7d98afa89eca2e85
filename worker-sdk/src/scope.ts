/// <reference path="./node-async-hooks.d.ts" />
import { AsyncLocalStorage } from "node:async_hooks";
import type { RunOptions, Runnable } from "./runnable.js";

/**
 * The task whose code is running, so `someTask.run(input)` called inside a task spawns a linked
 * child (inside a durable task: a checkpointed one, the parent evicted while it runs). Needs the
 * worker's `nodejs_als` (or `nodejs_compat`) compatibility flag.
 */
export interface ChildSpawner {
  runChild<I, O>(task: Runnable<I, O>, input: I, options?: RunOptions): Promise<O>;
}

export const currentTask = new AsyncLocalStorage<ChildSpawner>();
