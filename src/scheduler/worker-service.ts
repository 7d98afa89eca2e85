import type { Assignment, TaskOutcome, WorkerDescription } from "@spindle/worker-sdk/protocol";

/** What the engine calls on a worker over its service binding (the SDK's worker entrypoint). */
export interface WorkerService {
  describe(): Promise<WorkerDescription>;
  execute(assignment: Assignment): Promise<TaskOutcome>;
}
