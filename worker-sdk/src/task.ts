import type { z } from "zod";
import type { EngineClient } from "./client.js";
import type { Context } from "./context.js";
import type { DurableContext } from "./durable-context.js";
import type { Priority, RetryOptions, TaskFlowOptions, TaskFn, TaskImpl } from "./runnable.js";
import { jsonSchemaOf, Runnable, taskDefinition, withTriggers, type TriggerOptions } from "./runnable.js";
import type { WorkflowDefinition } from "./protocol.js";

export interface TaskDeclaration<I, O> extends RetryOptions, TriggerOptions, TaskFlowOptions {
  name: string;
  description?: string;
  /** A zod schema: the engine refuses input that does not match, and the task receives it parsed. */
  input?: z.ZodType<I>;
  /** Default priority of its runs, 1 (low) to 3 (high). */
  priority?: Priority;
  fn: TaskFn<I, O, Context<I>>;
}

/** A standalone task: a workflow of one task, triggered by its own name. */
export class Task<I, O> extends Runnable<I, O> {
  private readonly impl: TaskImpl;

  constructor(
    private readonly declaration: Omit<TaskDeclaration<I, O>, "fn"> & { fn: TaskImpl["fn"] },
    client: () => EngineClient,
    kind: "task" | "durable" = "task",
  ) {
    super(declaration.name, declaration.input, client);
    this.impl = { definition: taskDefinition(declaration.name, kind, [], declaration), fn: declaration.fn };
  }

  definition(): WorkflowDefinition {
    const def: WorkflowDefinition = { name: this.name, kind: "task", tasks: [this.impl.definition] };
    const schema = jsonSchemaOf(this.declaration.input);
    if (schema) def.inputSchema = schema;
    if (this.declaration.priority !== undefined) def.defaultPriority = this.declaration.priority;
    if (this.declaration.description) def.description = this.declaration.description;
    return withTriggers(def, this.declaration);
  }

  implementation(task: string): TaskImpl | undefined {
    return task === this.name ? this.impl : undefined;
  }
}

export interface DurableTaskDeclaration<I, O> extends Omit<TaskDeclaration<I, O>, "fn"> {
  fn: TaskFn<I, O, DurableContext<I>>;
}

/**
 * A standalone durable task: it may sleep, wait for events and spawn children, holding no slot
 * while it waits, and it resumes from its event log after a crash or an eviction.
 */
export class DurableTask<I, O> extends Task<I, O> {
  constructor(declaration: DurableTaskDeclaration<I, O>, client: () => EngineClient) {
    super({ ...declaration, fn: declaration.fn as TaskImpl["fn"] }, client, "durable");
  }
}
