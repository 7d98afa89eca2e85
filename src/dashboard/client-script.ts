/**
 * The dashboard's one client script, served at /assets/app.js. Pages are rendered on the server;
 * this script keeps them live: it listens on the engine's WebSockets (a run's object, or the
 * shards of the runs index) and, when told something changed, reloads the page's live region
 * (`#live`, fetched with `X-Spindle-Part: live`) in place, keeping what the user had open,
 * selected, focused or stepped to. It also drives the buttons (cancel, replay, bulk) and the
 * event-log stepper. Plain ES2020 in a string: there is nothing to build.
 */
export const CLIENT_SCRIPT = String.raw`
"use strict";
(function () {
  var body = document.body;
  var region = document.getElementById("live");
  var status = document.getElementById("status-message");
  function say(text) { if (status) status.textContent = text; }

  // ---- live region ---------------------------------------------------------------------------
  var refreshing = false, again = false, timer = null;
  function refreshSoon(delay) {
    if (timer !== null) return;
    timer = setTimeout(function () { timer = null; refresh(); }, delay === undefined ? 150 : delay);
  }
  function refresh() {
    if (!region) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { headers: { "x-spindle-part": "live" }, credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) { if (html !== null) swap(html); })
      .catch(function () {})
      .then(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }
  function swap(html) {
    var open = {}, steps = {}, checked = {};
    region.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
    region.querySelectorAll("input[type=range][id]").forEach(function (r) { steps[r.id] = { value: r.value, atEnd: r.value === r.max }; });
    region.querySelectorAll("input[type=checkbox][id]").forEach(function (c) { checked[c.id] = c.checked; });
    var focused = document.activeElement && region.contains(document.activeElement) ? document.activeElement.id : null;
    region.innerHTML = html;
    region.querySelectorAll("details[id]").forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
    region.querySelectorAll("input[type=checkbox][id]").forEach(function (c) { if (c.id in checked) c.checked = checked[c.id]; });
    region.querySelectorAll("input[type=range][id]").forEach(function (r) {
      var s = steps[r.id];
      if (s && !s.atEnd) r.value = s.value;
      step(r);
    });
    if (focused) { var f = document.getElementById(focused); if (f) f.focus(); }
    updateSelection();
  }

  // ---- WebSockets (hibernatable on the engine's side: an idle page costs nothing) -------------
  function watch(path) {
    var delay = 500;
    function open() {
      var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
      var ping = null;
      ws.onopen = function () {
        delay = 500;
        ping = setInterval(function () { try { ws.send("ping"); } catch (e) {} }, 30000);
      };
      ws.onmessage = function (e) {
        if (e.data === "pong") return;
        // Every message says something changed, the first ("hello") too: whatever changed between
        // the page's rendering (or the last connection) and this one is caught up now.
        refreshSoon();
      };
      ws.onclose = function () {
        if (ping) clearInterval(ping);
        setTimeout(open, delay); delay = Math.min(delay * 2, 15000);
      };
    }
    open();
  }
  if (body.dataset.page === "run" && body.dataset.runId) watch("/api/v1/live/runs/" + encodeURIComponent(body.dataset.runId));
  if (body.dataset.page === "runs") {
    for (var i = 0; i < Number(body.dataset.shards || 0); i++) watch("/api/v1/live/index/" + i);
  }

  // ---- actions -------------------------------------------------------------------------------
  function post(path, payload) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: payload === undefined ? {} : { "content-type": "application/json" },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) throw new Error((json.error && json.error.message) || ("HTTP " + res.status));
        return json;
      });
    });
  }
  function selected() {
    return Array.prototype.map.call(document.querySelectorAll("input[data-run-select]:checked"), function (c) { return c.value; });
  }
  function updateSelection() {
    var n = selected().length;
    document.querySelectorAll("[data-needs-selection]").forEach(function (b) { b.disabled = n === 0; });
    var count = document.getElementById("selection-count");
    if (count) count.textContent = n === 1 ? "1 run selected" : n + " runs selected";
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.id === "select-all") {
      document.querySelectorAll("input[data-run-select]").forEach(function (c) { c.checked = t.checked; });
    }
    if (t.matches && (t.matches("input[data-run-select]") || t.id === "select-all")) updateSelection();
  });
  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button[data-action]") : null;
    if (!button) return;
    var action = button.dataset.action, verb = action.indexOf("cancel") === 0 ? "cancel" : "replay";
    var request;
    if (action === "cancel-run" || action === "replay-run") {
      request = post("/api/v1/runs/" + encodeURIComponent(button.dataset.runId) + "/" + verb).then(function (run) { return verb === "cancel" ? "Run " + run.status.toLowerCase() + "." : "Run replaying."; });
    } else if (action === "cancel-selected" || action === "replay-selected") {
      request = post("/api/v1/runs/" + verb, { runIds: selected() }).then(done);
    } else if (action === "cancel-matching" || action === "replay-matching") {
      var filter = JSON.parse(button.dataset.filter || "{}");
      if (!confirm((verb === "cancel" ? "Cancel" : "Replay") + " every run matching the filters?")) return;
      request = post("/api/v1/runs/" + verb, { filter: filter }).then(done);
    } else return;
    button.disabled = true;
    say("Working…");
    request.then(say, function (err) { say("Failed: " + err.message); }).then(function () { button.disabled = false; refresh(); });
    function done(result) { return (verb === "cancel" ? "Cancelled " : "Replayed ") + result.affected + (result.affected === 1 ? " run." : " runs."); }
  });

  // ---- the event-log stepper -----------------------------------------------------------------
  function step(range) {
    var list = document.getElementById(range.dataset.timeline);
    if (!list) return;
    var k = Number(range.value), items = list.querySelectorAll("li[data-step]"), n = items.length;
    items.forEach(function (li) {
      var s = Number(li.dataset.step);
      li.classList.toggle("future", s > k);
      li.classList.toggle("current", s === k);
    });
    var out = document.getElementById(range.dataset.output);
    if (out) {
      var current = k > 0 ? items[k - 1] : null;
      out.textContent = k === 0 ? "Step 0 of " + n + ": before the first checkpoint" : "Step " + k + " of " + n + ": " + (current ? current.dataset.label : "");
    }
  }
  document.addEventListener("input", function (e) { if (e.target.dataset && e.target.dataset.timeline) step(e.target); });
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("button[data-step-by]") : null;
    if (!b) return;
    var range = document.getElementById(b.dataset.range);
    if (!range) return;
    range.value = String(Math.min(Number(range.max), Math.max(0, Number(range.value) + Number(b.dataset.stepBy))));
    step(range);
  });
  document.querySelectorAll("input[type=range][data-timeline]").forEach(step);
  updateSelection();
})();
`;
