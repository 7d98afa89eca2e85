import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startDevServer, type DevServer } from "./dev-server";

/**
 * The dashboard in a real Chromium (Debian's `chromium`, driven by playwright-core), against a
 * private `wrangler dev` stack with a second tenant.
 */
const OTHER_TOKEN = "dashboard-other-tenant-token";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** Set to a folder to save the screenshots the README shows. */
const SCREENSHOTS = process.env.SPINDLE_SCREENSHOTS;

let server: DevServer;
let browser: Browser;
let api: ReturnType<typeof client>;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  server = await startDevServer({ args: ["--var", `SPINDLE_TENANTS:${JSON.stringify({ other: OTHER_TOKEN })}`] });
  api = client(server);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function signedIn(token = server.token, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Runs" }).waitFor();
  return page;
}

/** Marks the page, so a test can tell it was updated in place and not reloaded. */
const mark = (page: Page) => page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
const stillMarked = (page: Page) => page.evaluate(() => (window as unknown as { marker?: number }).marker === 42);

/** Waits (up to 30 s, re-reading the page) for what a user would eventually see. */
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: 30_000, interval: 100 });
const text = (l: Locator) => l.textContent().then((t) => (t ?? "").trim());

const row = (page: Page, runId: string) => page.locator(`tr[data-run-id="${runId}"]`);

async function untilWaiting(runId: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const run = (await api.call("GET", `/api/v1/runs/${runId}`)).body;
    if (run.tasks[0]?.evicted) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} never started waiting`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the dashboard in Chromium", () => {
  it("refuses a wrong token, signs in with the right one (an HttpOnly, SameSite=Strict cookie), and signs out", async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${server.url}/runs/01JH8X7Q2K3M4N5P6Q7R8S9T0V`);
    await page.getByLabel("API token").fill("not-the-token-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await poll(() => text(page.getByRole("alert"))).toBe("That API token is not valid.");
    expect(await context.cookies()).toEqual([]);
    await page.getByLabel("API token").fill(server.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Runs" }).waitFor();
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(await page.evaluate(() => document.cookie)).toBe("");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").waitFor();
    expect(await context.cookies()).toEqual([]);
  });

  it("shows a dag run appear in the runs list and reach COMPLETED without a reload, then both tasks in its graph", async () => {
    const page = await signedIn();
    await mark(page);
    const runId = await api.trigger("dag", { Message: "Hello Dashboard" });
    await poll(() => text(row(page, runId).locator(".status"))).toBe("COMPLETED");
    await poll(() => text(row(page, runId))).toContain("dag");
    expect(await stillMarked(page)).toBe(true);
    if (SCREENSHOTS) {
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, "runs.png") });
    }
    await row(page, runId).getByRole("link", { name: runId }).click();
    await page.getByRole("heading", { name: /dag/ }).waitFor();
    const nodes = page.locator(".dag svg a.node");
    await poll(() => nodes.count()).toBe(2);
    expect(await nodes.evaluateAll((els) => els.map((e) => [e.getAttribute("data-task"), e.getAttribute("data-status")]))).toEqual([
      ["to-lower", "COMPLETED"],
      ["reverse", "COMPLETED"],
    ]);
    await poll(() => page.locator(".dag svg path.edge").count()).toBe(1);
    await poll(() => text(page.getByLabel("Output", { exact: true }))).toContain("draobhsad olleh");
  });

  it("grows a waiting durable-event run's timeline live when its event is pushed", async () => {
    const userId = `u-${Date.now()}`;
    const runId = await api.trigger("durable-event", { userId });
    await untilWaiting(runId);
    const page = await signedIn();
    await page.goto(`${server.url}/runs/${runId}`);
    const entries = page.locator("ol.timeline li");
    await poll(() => entries.count()).toBe(1);
    await poll(() => entries.first().getAttribute("data-status")).toBe("pending");
    await poll(() => text(page.locator("h1 .status"))).toBe("RUNNING");
    await mark(page);
    const pushed = await api.call("POST", "/api/v1/events", { key: "user:update", payload: { userId, name: "Ada" } });
    expect(pushed.status).toBe(200);
    await poll(() => entries.first().getAttribute("data-status")).toBe("resolved");
    await poll(() => text(page.locator("h1 .status"))).toBe("COMPLETED");
    await poll(() => text(entries.first())).toContain("Ada");
    expect(await stillMarked(page)).toBe(true);
  });

  it("steps through a durable run's event log checkpoint by checkpoint, with the keyboard too", async () => {
    const runId = await api.trigger("durable-checkout", { orderId: "o-1", sleepMs: 200 });
    const run = await api.result(runId);
    expect(run.status).toBe("COMPLETED");
    const page = await signedIn();
    await page.goto(`${server.url}/runs/${runId}`);
    const steps = page.locator("ol.timeline li");
    await poll(() => steps.count()).toBe(3);
    const range = page.getByRole("slider", { name: "Checkpoint of durable-checkout" });
    const output = page.locator("output");
    await poll(() => text(output)).toMatch(/^Step 3 of 3: memo/);
    await page.getByRole("button", { name: "Previous checkpoint" }).click();
    await poll(() => text(output)).toMatch(/^Step 2 of 3: sleep/);
    await poll(() => steps.nth(2).getAttribute("class")).toMatch(/future/);
    await poll(() => steps.nth(2).locator(".seen").isHidden()).toBe(true);
    await poll(() => steps.nth(1).getAttribute("class")).toMatch(/current/);
    await range.focus();
    await page.keyboard.press("ArrowLeft");
    await poll(() => text(output)).toMatch(/^Step 1 of 3: memo/);
    await poll(() => text(steps.nth(0).locator(".seen"))).toContain("chargeId");
    await poll(() => steps.nth(1).locator(".seen").isHidden()).toBe(true);
    await page.keyboard.press("Home");
    await poll(() => text(output)).toBe("Step 0 of 3: before the first checkpoint");
    await page.getByRole("button", { name: "Next checkpoint" }).click();
    await page.getByRole("button", { name: "Next checkpoint" }).click();
    await page.getByRole("button", { name: "Next checkpoint" }).click();
    await poll(() => text(output)).toMatch(/^Step 3 of 3/);
    await poll(() => text(steps.nth(2).locator(".seen"))).toContain("receiptId");
    if (SCREENSHOTS) {
      await page.getByRole("button", { name: "Previous checkpoint" }).click();
      await page.locator("ol.timeline").scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(SCREENSHOTS, "durable.png") });
    }
  });

  it("shows the stream's chunks and the task's log lines arrive on the run's page", async () => {
    const page = await signedIn();
    const runId = await api.trigger("stream", null);
    await page.goto(`${server.url}/runs/${runId}`);
    await mark(page);
    const stream = page.locator("#stream-output");
    await poll(() => text(stream)).toContain("chunk 9");
    expect((await stream.textContent())!.trim().split("\n")).toEqual(Array.from({ length: 10 }, (_, i) => `chunk ${i}`));
    await poll(() => text(page.getByLabel("Logs of stream"))).toContain("put chunk 9");
    await poll(() => text(page.locator("h1 .status"))).toBe("COMPLETED");
    expect(await stillMarked(page)).toBe(true);
    if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, "run.png"), fullPage: true });
  });

  it("cancels a run from its page", async () => {
    const runId = await api.trigger("slow-task", { ms: 60_000 });
    const page = await signedIn();
    await page.goto(`${server.url}/runs/${runId}`);
    await page.getByRole("button", { name: "Cancel run" }).click();
    await poll(() => text(page.locator("h1 .status"))).toBe("CANCELLED");
    expect((await api.call("GET", `/api/v1/runs/${runId}`)).body.status).toBe("CANCELLED");
  });

  it("cancels a selection of runs from the runs page, at a phone's width", async () => {
    const batch = `b${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await api.call("POST", "/api/v1/workflows/slow-task/runs", { input: { ms: 60_000 }, additionalMetadata: { batch } });
      ids.push(res.body.runId);
    }
    const page = await signedIn(server.token, { width: 390, height: 844 });
    await page.goto(`${server.url}/?metadata=${encodeURIComponent(`batch:${batch}`)}`);
    for (const id of ids) await row(page, id).waitFor({ timeout: 30_000 });
    for (const id of ids) await page.getByLabel(`Select run ${id}`).check();
    await poll(() => text(page.locator("#selection-count"))).toBe("2 runs selected");
    await page.getByRole("button", { name: "Cancel selected" }).click();
    await poll(() => text(page.getByRole("status"))).toBe("Cancelled 2 runs.");
    for (const id of ids) await poll(() => text(row(page, id).locator(".status"))).toBe("CANCELLED");
    // Readable at a phone's width: nothing wider than the screen but the table's own scroller.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  });

  it("shows another tenant nothing of a run it does not own", async () => {
    const runId = await api.trigger("dag", { Message: "secret-message-of-default" });
    await api.result(runId);
    const mine = await signedIn();
    await mine.goto(`${server.url}/runs/${runId}`);
    await poll(() => text(mine.locator("body"))).toContain("secret-message-of-default");
    const theirs = await signedIn(OTHER_TOKEN);
    expect(await text(theirs.locator("body"))).not.toContain(runId);
    const res = await theirs.goto(`${server.url}/runs/${runId}`);
    expect(res?.status()).toBe(404);
    await poll(() => text(theirs.locator("body"))).toContain("This tenant has no run");
    expect(await text(theirs.locator("body"))).not.toContain("secret-message-of-default");
    expect(await text(theirs.locator("body"))).not.toContain("to-lower");
  });

  it("shows a pushed event on the Events page and follows its link to the run it started", async () => {
    const name = `Ada-${Date.now()}`;
    const pushed = await api.call("POST", "/api/v1/events", { key: "user:created", payload: { name } });
    expect(pushed.status).toBe(200);
    const [started] = pushed.body.runs as { workflow: string; runId: string }[];
    expect(started?.workflow).toBe("on-event");
    const page = await signedIn();
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Events" }).click();
    await page.getByRole("heading", { name: "Events" }).waitFor();
    const event = page.locator(`tr[data-event-id="${pushed.body.eventId}"]`);
    await poll(() => text(event)).toContain("user:created");
    expect(await text(event)).toContain(name);
    await event.getByRole("link", { name: started!.runId }).click();
    await page.getByRole("heading", { name: /on-event/ }).waitFor();
    expect(page.url()).toBe(`${server.url}/runs/${started!.runId}`);
    await poll(() => text(page.locator("h1 .status"))).toBe("COMPLETED");
    await poll(() => text(page.getByLabel("Output", { exact: true }))).toContain(name);
  });

  it("reaches every page from the navigation, each fitting a phone's width", async () => {
    const page = await signedIn(server.token, { width: 390, height: 844 });
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const [link, heading] of [["Events", "Events"], ["Crons", "Crons"], ["Schedules", "Schedules"], ["Flow control", "Flow control"], ["Workers", "Workers"], ["Runs", "Runs"]]) {
      await nav.getByRole("link", { name: link }).click();
      await page.getByRole("heading", { name: heading, exact: true }).waitFor();
      expect(await nav.locator('[aria-current="page"]').textContent()).toBe(link);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    }
  });

  it("lists the workers with their transport, status, slots in use and workflows", async () => {
    const page = await signedIn();
    await page.getByRole("link", { name: "Workers" }).click();
    const example = page.locator("tr", { hasText: "example" });
    await poll(() => example.locator("td").nth(1).innerText()).toBe("service binding\nWORKER_EXAMPLE");
    await poll(() => text(example.locator(".status").first())).toBe("ACTIVE");
    await poll(() => text(example)).toMatch(/regular: \d+ \/ 100/);
    await poll(() => text(example)).toContain("stream");
  });
});
