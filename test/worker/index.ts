/**
 * The script the workerd tests run: the whole engine, plus SDK workers holding the test workflows
 * (`TestWorker`, and small slot pools in `SlottedWorker`, `SerialWorker` and `TightWorker`), plus `RawWorker`, which
 * speaks the wire protocol without the SDK. Tests drive it through the HTTP API
 * (`exports.default.fetch`), the SDK, and the runtime's own hooks (alarms, eviction).
 */
import { durableWorkflows, tightWorker } from "./durable";
import { serialWorker, slottedWorker } from "./pools";
import { edgeCaseWorkflows } from "./edge-cases";
import { idempotencyWorkflows } from "./idempotency";
import { limitsWorkflows } from "./limits";
import { livenessWorkflows } from "./liveness";
import { replayMatchingWorkflows } from "./replay-matching";
import { streamWorkflows } from "./streams";
import { regularWorkflows, spindle } from "./workflows";

const testWorker = spindle.worker({
  name: "test",
  slots: 50,
  workflows: [...regularWorkflows, ...durableWorkflows, ...edgeCaseWorkflows, ...idempotencyWorkflows, ...replayMatchingWorkflows, ...livenessWorkflows, ...limitsWorkflows, ...streamWorkflows],
});

export { default, Engine, EventBus, IdempotencyKeys, Registry, RunIndex, WorkflowRun, TaskQueue } from "../../src/index";
export { RawWorker } from "./raw-worker";

export class TestWorker extends testWorker {}
export class SlottedWorker extends slottedWorker {}
export class SerialWorker extends serialWorker {}
export class TightWorker extends tightWorker {}
