// The hotspot scenario's HTML report in headless chromium (run by scripts/checks/30-demo.sh):
//   node scripts/demo/hotspot-page.mjs REPORT.html SCREENSHOT.png
// Checks that the page loads nothing from the network, runs its script without errors, shows
// the JSON's figures per application for the four runs, marks the checks as the JSON does,
// draws each application's connections in use, requests waiting and lease wait from the JSON's
// series, and that the hover read-out names the applications. Exits non-zero on the first
// failed expectation.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { openBrowser } from "../lib/browser.mjs";

const [htmlPath, screenshot] = process.argv.slice(2);
if (!htmlPath || !screenshot) {
  console.error("usage: node scripts/demo/hotspot-page.mjs REPORT.html SCREENSHOT.png");
  process.exit(2);
}
const report = JSON.parse(readFileSync(htmlPath.replace(/\.html$/, ".json"), "utf8"));
assert.equal(report.scenario, "hotspot", "a report of scripts/demo.sh --scenario hotspot");
const say = (text) => console.log(`hotspot-page: ${text}`);
const RUNS = ["steadyAlone", "ungoverned", "sharedPool", "shares"];
const APPS = ["steady", "hot"];

const { page, problems, requests, close } = await openBrowser("demo-hotspot", { width: 1300, height: 1000 });
try {
  const url = pathToFileURL(path.resolve(htmlPath)).href;
  await page.goto(url, { waitUntil: "load" });
  assert.deepEqual(requests.filter((r) => r !== url), [], "the page loads nothing else");
  say("self-contained, no requests besides the page");

  // The four runs side by side, a block of rows per application.
  const heads = await page.locator("table.figures thead th").allInnerTexts();
  assert.deepEqual(heads.slice(1), RUNS, "one column per run, in the order they ran");
  const cell = async (label, column) =>
    page.locator("table.figures tr", { has: page.locator(`th:text-is("${label}")`) })
      .locator("td").nth(column).innerText();
  for (const [column, name] of RUNS.entries()) {
    const run = report.hotspot.runs[name];
    for (const app of APPS) {
      const a = run.applications[app];
      const executions = await cell(`${app}: executions`, column);
      if (!a) {
        assert.equal(executions, "–", `${name}: ${app} did not run, and the table says so`);
        continue;
      }
      assert.equal(executions, String(a.executions), `${name}: ${app} executions`);
      assert.equal(await cell(`${app}: served / fallback / failed`, column),
        `${a.served} / ${a.fallback} / ${a.failed}`, `${name}: ${app} outcomes`);
      assert.equal(await cell(`${app}: DatabaseBusy errors`, column), String(a.databaseBusyErrors),
        `${name}: ${app} DatabaseBusy errors`);
      const p99 = (await cell(`${app}: lease wait p50 / p95 / p99 / max ms`, column)).split(" / ")[2];
      assert.equal(p99 ?? "–", a.leaseWait ? String(a.leaseWait.p99Ms) : "–", `${name}: ${app} p99 wait`);
    }
  }
  say("the table shows the JSON's figures per application for the four runs");

  // One check line per check of the JSON, marked as the JSON says.
  const checks = await page.locator("ul.checks li").evaluateAll((items) => items.map((li) => li.className));
  const expected = Object.values(report.hotspot.checks).map((ok) => (ok ? "ok" : "bad"));
  assert.deepEqual(checks, expected, "check marks follow the JSON");
  say(`${checks.length} check lines, marked as in the JSON`);

  // Four charts per run: connections in use, waiting, lease wait, DatabaseBusy.
  const charts = await page.locator("svg.chart").evaluateAll((svgs) => svgs.map((svg) => ({
    label: svg.getAttribute("aria-label"),
    series: JSON.parse(svg.getAttribute("data-series")),
    bars: svg.querySelectorAll("rect").length,
    empty: svg.querySelector("text.empty")?.textContent ?? null,
    width: svg.getBoundingClientRect().width,
  })));
  assert.equal(charts.length, 16, "four charts per run");
  for (const [index, name] of RUNS.entries()) {
    const run = report.hotspot.runs[name];
    const [inUse, waiting, wait, busy] = charts.slice(index * 4, index * 4 + 4);
    for (const c of [inUse, waiting, wait, busy]) {
      assert.ok(c.width > 300, `${name}: ${c.label} is drawn at a readable size`);
    }
    const line = (chart, label) => chart.series.find((s) => s.label.startsWith(label));
    for (const app of Object.keys(run.applications)) {
      const series = run.series.applications[app];
      if (run.acquireMode === null) {
        assert.equal(line(inUse, `${app}:`), undefined, `${name}: no leases of ${app} without leases`);
        continue;
      }
      assert.equal(line(inUse, `${app}:`).points.length, series.inUse.length,
        `${name}: ${app}'s leases in use carry every sample`);
      const peak = Math.max(0, ...line(inUse, `${app}:`).points.map((p) => p[1]));
      assert.equal(peak, run.applications[app].peakInUse, `${name}: the chart's peak is ${app}'s peak in use`);
      assert.equal(line(waiting, `${app}:`).points.length, series.waiting.length,
        `${name}: ${app}'s waiting carries every sample`);
      assert.equal(line(wait, `${app}:`).points.length, series.leaseWait.length,
        `${name}: ${app}'s lease wait per second`);
    }
    assert.equal(line(inUse, "database connections").points.length, run.series.connections.length,
      `${name}: the database's connections carry every sample`);
    assert.equal(busy.bars, run.series.databaseBusyErrors.length, `${name}: one bar per second with DatabaseBusy`);
    if (run.acquireMode === null) {
      assert.ok(waiting.empty !== null && wait.empty !== null, `${name}: no queue without leases, and it says so`);
    }
  }
  say("16 charts drawn from the JSON's series");

  // Hovering over the shares run's connections chart names both applications.
  const sharesChart = page.locator("svg.chart").nth(12);
  await sharesChart.scrollIntoViewIfNeeded();
  const box = await sharesChart.boundingBox();
  await sharesChart.hover({ position: { x: box.width * 0.3, y: box.height * 0.5 } });
  const readout = await sharesChart.locator("text.readout").textContent();
  assert.match(readout, /steady: leases in use: \d+.*hot: leases in use: \d+/, `hover read-out, got "${readout}"`);
  say(`hover read-out: "${readout}"`);

  assert.deepEqual(problems, [], "no script errors");
  await page.screenshot({ path: screenshot, fullPage: true });
  say(`screenshot: ${screenshot}`);
} finally {
  await close();
}
