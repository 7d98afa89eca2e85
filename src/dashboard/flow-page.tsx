/** @jsxImportSource hono/jsx */
import type { ConcurrencyKeyView, RateLimitView } from "@spindle/worker-sdk/protocol";
import { Layout, ReloadLink, time } from "./layout";

/** Flow control as it stands: every rate limit, and the concurrency keys that hold or queue runs. */
export function FlowPage(props: { tenant: string; rateLimits: RateLimitView[]; concurrency: ConcurrencyKeyView[] }) {
  return (
    <Layout title="Flow control" page="flow" tenant={props.tenant}>
      <h1>Flow control</h1>
      <div class="actions">
        <ReloadLink href="/flow" />
      </div>
      <section aria-labelledby="rate-limits-h">
        <h2 id="rate-limits-h">Rate limits</h2>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Rate limits: static ones, and dynamic ones in use</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Kind</th>
                <th scope="col">Limit</th>
                <th scope="col">Units left</th>
                <th scope="col">Next refill</th>
              </tr>
            </thead>
            <tbody>
              {props.rateLimits.length === 0 && (
                <tr>
                  <td colspan={5} class="muted">
                    No rate limits: define one with PUT /api/v1/rate-limits/{"{key}"}, or name a dynamic key in a task.
                  </td>
                </tr>
              )}
              {props.rateLimits.map((r) => (
                <tr data-rate-limit={r.key}>
                  <td class="mono">{r.key}</td>
                  <td>{r.kind}</td>
                  <td>
                    {r.limit} per {r.duration}
                  </td>
                  <td>
                    {r.unitsLeft} / {r.limit}
                    {r.unitsLeft === 0 ? (
                      <>
                        {" "}
                        <span class="status s-QUEUED">EXHAUSTED</span>
                      </>
                    ) : null}
                  </td>
                  <td>{time(r.nextRefillAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-labelledby="concurrency-h">
        <h2 id="concurrency-h">Concurrency keys</h2>
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Concurrency keys that hold or queue runs</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Workflow</th>
                <th scope="col">Task</th>
                <th scope="col">Strategy</th>
                <th scope="col">Running</th>
                <th scope="col">Queued</th>
                <th scope="col">Max runs</th>
              </tr>
            </thead>
            <tbody>
              {props.concurrency.length === 0 && (
                <tr>
                  <td colspan={7} class="muted">
                    No concurrency key holds or queues a run now.
                  </td>
                </tr>
              )}
              {props.concurrency.map((k) => (
                <tr data-concurrency-key={k.key}>
                  <td class="mono">{k.key}</td>
                  <td>{k.workflow}</td>
                  <td>{k.task ?? <span class="muted">the whole workflow</span>}</td>
                  <td>{k.limitStrategy}</td>
                  <td>{k.running}</td>
                  <td>{k.queued}</td>
                  <td>{k.maxRuns}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </Layout>
  );
}
