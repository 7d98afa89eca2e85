import type { z } from "zod";
import type { EngineClient } from "./client.js";
import { toConditionData, type ConditionSpec, ParentCondition } from "./conditions.js";
import type { Context } from "./context.js";
import type { DurableContext } from "./durable-context.js";
import { SpindleError } from "./errors.js";
import type { TaskDefinition, WorkflowDefinition } from "./protocol.js";
import type { Priority, RetryOptions, TaskFlowOptions, TaskFn, TaskImpl } from "./runnable.js";
import { concurrencyData, type ConcurrencyDeclaration } from "./flow.js";
import { jsonSchemaOf, Runnable, taskDefinition, TaskRef, withTriggers, type TriggerOptions } from "./runnable.js";

export interface WorkflowDeclaration<I> extends TriggerOptions {
  name: string;
  description?: string;
  input?: z.ZodType<I>;
  /** Priority of its runs unless the trigger says otherwise, 1 (low) to 3 (high). */
  defaultPriority?: Priority;
  /** Concurrency keys the whole run holds from its first start to its end. */
  concurrency?: ConcurrencyDeclaration;
}

export interface DagTaskDeclaration<I, O> extends RetryOptions, TaskFlowOptions {
  name: string;
  /** Tasks that must complete (or be skipped) before this one starts; their outputs are in `ctx.parentOutput`. */
  parents?: TaskRef<I, unknown>[];
  /** Once the parents are done, wait until these conditions hold before starting. */
  waitFor?: ConditionSpec[];
  /** Skip the task (it ends SKIPPED; its children see `ctx.wasSkipped`) if these conditions hold. */
  skipIf?: ConditionSpec[];
  /** Cancel the task if these conditions hold. */
  cancelIf?: ConditionSpec[];
  fn: TaskFn<I, O, Context<I>>;
}

export interface DagDurableTaskDeclaration<I, O> extends Omit<DagTaskDeclaration<I, O>, "fn"> {
  fn: TaskFn<I, O, DurableContext<I>>;
}

export interface RoleTaskDeclaration<I, O> extends RetryOptions {
  name?: string;
  fn: TaskFn<I, O, Context<I>>;
}

/**
 * A workflow: tasks and their dependencies, declared up front. A task starts when all its parents
 * have completed; the run's output is an object keyed by task name.
 */
export class Workflow<I, O = Record<string, unknown>> extends Runnable<I, O> {
  protected readonly tasks = new Map<string, TaskImpl>();
  private readonly concurrency: WorkflowDefinition["concurrency"];

  constructor(
    private readonly declaration: WorkflowDeclaration<I>,
    client: () => EngineClient,
  ) {
    super(declaration.name, declaration.input, client);
    this.concurrency = concurrencyData(declaration.concurrency, `workflow '${declaration.name}'.concurrency`);
  }

  /** Adds a task; `parents` must be tasks already added to this workflow. */
  task<T>(declaration: DagTaskDeclaration<I, T>): TaskRef<I, T> {
    return this.add(this.dagDefinition(declaration, "task"), declaration.fn as TaskImpl["fn"]);
  }

  /** Adds a durable task to the DAG: it may sleep, wait for events and spawn children. */
  durableTask<T>(declaration: DagDurableTaskDeclaration<I, T>): TaskRef<I, T> {
    return this.add(this.dagDefinition(declaration, "durable"), declaration.fn as TaskImpl["fn"]);
  }

  private dagDefinition(declaration: Omit<DagTaskDeclaration<I, unknown>, "fn">, kind: "task" | "durable"): TaskDefinition {
    const parents = (declaration.parents ?? []).map((p) => this.parentName(declaration.name, p));
    const def = taskDefinition(declaration.name, kind, parents, declaration);
    for (const list of ["waitFor", "skipIf", "cancelIf"] as const) {
      const specs = declaration[list];
      if (!specs?.length) continue;
      for (const spec of specs.flatMap((s) => ("conditions" in s && Array.isArray(s.conditions) ? s.conditions : [s]))) {
        if (spec instanceof ParentCondition && !parents.includes(spec.parent)) {
          throw new SpindleError("config.invalid", `task '${declaration.name}': ${list} refers to '${spec.parent}', which is not one of its parents`);
        }
      }
      def[list] = toConditionData(specs, `${declaration.name}.${list}`);
    }
    return def;
  }

  /** Runs when any task of the run has failed (after the others have ended); `ctx.errors()` says what failed. */
  onFailure<T>(declaration: RoleTaskDeclaration<I, T>): TaskRef<I, T> {
    const name = declaration.name ?? `${this.name}:on-failure`;
    return this.add(taskDefinition(name, "task", [], declaration, "on_failure"), declaration.fn as TaskImpl["fn"]);
  }

  /** Runs after every task of the run has completed. */
  onSuccess<T>(declaration: RoleTaskDeclaration<I, T>): TaskRef<I, T> {
    const name = declaration.name ?? `${this.name}:on-success`;
    return this.add(taskDefinition(name, "task", [], declaration, "on_success"), declaration.fn as TaskImpl["fn"]);
  }

  definition(): WorkflowDefinition {
    if (this.tasks.size === 0) throw new SpindleError("config.invalid", `workflow '${this.name}' has no tasks`);
    const def: WorkflowDefinition = { name: this.name, kind: "workflow", tasks: [...this.tasks.values()].map((t) => t.definition) };
    const schema = jsonSchemaOf(this.declaration.input);
    if (schema) def.inputSchema = schema;
    if (this.declaration.defaultPriority !== undefined) def.defaultPriority = this.declaration.defaultPriority;
    if (this.declaration.description) def.description = this.declaration.description;
    if (this.concurrency) def.concurrency = this.concurrency;
    return withTriggers(def, this.declaration);
  }

  implementation(task: string): TaskImpl | undefined {
    return this.tasks.get(task);
  }

  protected add<T>(definition: TaskDefinition, fn: TaskImpl["fn"]): TaskRef<I, T> {
    if (this.tasks.has(definition.name)) {
      throw new SpindleError("config.invalid", `workflow '${this.name}' already has a task named '${definition.name}'`);
    }
    if (definition.role && [...this.tasks.values()].some((t) => t.definition.role === definition.role)) {
      throw new SpindleError("config.invalid", `workflow '${this.name}' already has an ${definition.role} task`);
    }
    this.tasks.set(definition.name, { definition, fn });
    return new TaskRef<I, T>(definition.name, this.name);
  }

  protected parentName(task: string, parent: TaskRef<I, unknown>): string {
    if (parent.workflow !== this.name || !this.tasks.has(parent.name)) {
      throw new SpindleError("config.invalid", `task '${task}': parent '${parent.name}' is not a task of workflow '${this.name}'`);
    }
    return parent.name;
  }
}
