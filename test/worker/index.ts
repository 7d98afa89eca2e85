/**
 * The script the workerd tests run: the whole engine, plus SDK workers holding the test workflows
 * (`TestWorker`, and small slot pools in `SlottedWorker`, `SerialWorker` and `TightWorker`), plus `RawWorker`, which
 * speaks the wire protocol without the SDK. Tests drive it through the HTTP API
 * (`exports.default.fetch`), the SDK, and the runtime's own hooks (alarms, eviction).
 */
import { durableWorkflows, tightWorker } from "./durable";
import { flowSerialWorker, flowShardedWorker, flowSlotsWorker, flowWorkflows } from "./flow";
import { serialWorker, slottedWorker } from "./pools";
import { edgeCaseWorkflows } from "./edge-cases";
import { idempotencyWorkflows } from "./idempotency";
import { limitsWorkflows } from "./limits";
import { livenessWorkflows } from "./liveness";
import { replayMatchingWorkflows } from "./replay-matching";
import { triggerWorkflows } from "./triggers";
import { streamWorkflows } from "./streams";
import { regularWorkflows, spindle } from "./workflows";

const testWorker = spindle.worker({
  name: "test",
  slots: 50,
  workflows: [...regularWorkflows, ...durableWorkflows, ...edgeCaseWorkflows, ...idempotencyWorkflows, ...replayMatchingWorkflows, ...livenessWorkflows, ...limitsWorkflows, ...triggerWorkflows, ...flowWorkflows, ...streamWorkflows],
});

export { default, Engine, EventBus, EventIndex, FlowLimits, IdempotencyKeys, Registry, RunIndex, Triggers, WorkflowRun, TaskQueue } from "../../src/index";
export { RawWorker } from "./raw-worker";
import { WorkerEntrypoint } from "cloudflare:workers";
import { parkedWorker } from "./parked";
import { conformanceBindingWorker, conformanceHttpsWorker, sharingWorkers, strangerBoundWorker, strangerWorker } from "./conformance";

export class TestWorker extends testWorker {}
export class SlottedWorker extends slottedWorker {}
export class SerialWorker extends serialWorker {}
export class TightWorker extends tightWorker {}
export class FlowSerialWorker extends flowSerialWorker {}
export class FlowSlotsWorker extends flowSlotsWorker {}
export class FlowShardedWorker extends flowShardedWorker {}
export class ConformanceWorker extends conformanceBindingWorker {}
export class StrangerWorker extends strangerBoundWorker {}
export class ParkedWorker extends parkedWorker {}

/**
 * What the engine's HTTPS_OUTBOUND reaches: workers served with `spindle.serve()`, by host name.
 * `down.test` answers like a host with no Spindle worker on it.
 */
export class HttpsWorkers extends WorkerEntrypoint {
  override async fetch(request: Request): Promise<Response> {
    const host = new URL(request.url).host;
    if (host === "conf-https.test") return conformanceHttpsWorker.fetch(request);
    if (host === "stranger.test") return strangerWorker.fetch(request);
    const sharing = sharingWorkers[host];
    if (sharing) return sharing.fetch(request);
    return new Response("<html>no worker here</html>", { status: 404, headers: { "content-type": "text/html" } });
  }
}
