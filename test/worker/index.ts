/**
 * The script the workerd tests run: the whole engine, plus SDK workers holding the test workflows
 * (`TestWorker`, and small slot pools in `SlottedWorker` and `SerialWorker`), plus `RawWorker`, which
 * speaks the wire protocol without the SDK. Tests drive it through the HTTP API
 * (`exports.default.fetch`), the SDK, and the runtime's own hooks (alarms, eviction).
 */
import { serialWorker, slottedWorker } from "./pools";
import { testWorker } from "./workflows";

export { default, Engine, EventBus, Registry, RunIndex, WorkflowRun, TaskQueue } from "../../src/index";
export { RawWorker } from "./raw-worker";

export class TestWorker extends testWorker {}
export class SlottedWorker extends slottedWorker {}
export class SerialWorker extends serialWorker {}
