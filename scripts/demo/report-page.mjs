// The demo's HTML report in headless chromium (run by scripts/checks/30-demo.sh):
//   node scripts/demo/report-page.mjs REPORT.html SCREENSHOT.png
// Checks that the page loads nothing from the network, runs its script without errors, shows
// the figures of the JSON beside it for the three runs, draws every chart from the JSON's series
// and every wait histogram from its buckets, and that the hover read-out reports values. Exits
// non-zero on the first failed expectation.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { openBrowser } from "../lib/browser.mjs";

const [htmlPath, screenshot] = process.argv.slice(2);
if (!htmlPath || !screenshot) {
  console.error("usage: node scripts/demo/report-page.mjs REPORT.html SCREENSHOT.png");
  process.exit(2);
}
const report = JSON.parse(readFileSync(htmlPath.replace(/\.html$/, ".json"), "utf8"));
const say = (text) => console.log(`report-page: ${text}`);

const { page, problems, requests, close } = await openBrowser("demo-report", { width: 1300, height: 1000 });
try {
  const url = pathToFileURL(path.resolve(htmlPath)).href;
  await page.goto(url, { waitUntil: "load" });

  // Self-contained: the page itself is the only request.
  assert.deepEqual(requests.filter((r) => r !== url), [], "the page loads nothing else");
  say("self-contained, no requests besides the page");

  // The figures of the three runs, side by side, as in the JSON: queued, polling (the JSON's
  // governed), ungoverned.
  const RUNS = [[0, "queued"], [1, "governed"], [2, "ungoverned"]];
  const heads = await page.locator("table.figures thead th").allInnerTexts();
  assert.deepEqual(heads.slice(1), ["queued", "polling", "ungoverned"], "one column per run");
  const cell = async (label, column) =>
    page.locator("table.figures tr", { has: page.locator(`th:text-is("${label}")`) })
      .locator("td").nth(column).innerText();
  for (const [column, name] of RUNS) {
    const run = report.runs[name];
    assert.equal(await cell("executions", column), String(run.executions), `${name} executions`);
    assert.equal(await cell("served", column), String(run.served), `${name} served`);
    assert.equal(await cell("failed", column), String(run.failed), `${name} failed`);
    assert.equal(await cell("DatabaseBusy errors (MySQL 1040)", column), String(run.databaseBusyErrors),
      `${name} DatabaseBusy errors`);
    assert.equal(await cell("leases held at the end", column), String(run.leasesHeldAtEnd), `${name} leases at end`);
    assert.equal(await cell("served per second", column), String(run.servedPerSecond), `${name} served per second`);
  }
  say("the table shows the JSON's figures for the three runs");

  // The FIFO ideal, as in the JSON.
  const ideal = await page.locator("p.ideal").innerText();
  assert.ok(ideal.includes(String(report.fifoIdeal.servedPerSecond)), `the ideal's served per second in "${ideal}"`);

  // One check line per check of the JSON, marked as the JSON says.
  const checks = await page.locator("ul.checks li").evaluateAll((items) => items.map((li) => li.className));
  const expected = Object.values(report.checks).map((ok) => (ok ? "ok" : "bad"));
  assert.deepEqual(checks, expected, "check marks follow the JSON");
  say(`${checks.length} check lines, marked as in the JSON`);

  // Five charts over time per run, each drawing exactly the series of the JSON.
  const charts = await page.locator("svg.chart:not(.histogram)").evaluateAll((svgs) => svgs.map((svg) => {
    const box = svg.getBoundingClientRect();
    return {
      label: svg.getAttribute("aria-label"),
      series: JSON.parse(svg.getAttribute("data-series")),
      paths: [...svg.querySelectorAll("path")].map((p) => p.getAttribute("d").split(/[ML]/).filter(Boolean).length),
      bars: svg.querySelectorAll("rect").length,
      empty: svg.querySelector("text.empty")?.textContent ?? null,
      width: box.width,
      height: box.height,
    };
  }));
  assert.equal(charts.length, 15, "five charts over time per run");
  for (const [index, name] of RUNS) {
    const run = report.runs[name];
    const [connections, remaining, refused, busy, waiting] = charts.slice(index * 5, index * 5 + 5);
    for (const c of [connections, remaining, refused, busy, waiting]) {
      assert.ok(c.width > 300 && c.height > 100, `${name}: ${c.label} is drawn at a readable size`);
    }
    assert.equal(connections.series[0].points.length, run.series.connections.length,
      `${name}: the connections chart carries every sample`);
    assert.ok(connections.paths[0] >= run.series.connections.length,
      `${name}: the connections line passes through every sample`);
    const peak = Math.max(...connections.series[0].points.map((p) => p[1]));
    assert.equal(peak, run.peakSampledConnections, `${name}: the chart's peak is the sampled peak`);
    assert.equal(remaining.series[0].points.length, run.series.remainingConnections.length,
      `${name}: RemainingConnections from CloudWatch`);
    const refusedBars = run.series.noConnectionsLeftError.filter((p) => p[1] > 0).length;
    assert.equal(refused.bars, refusedBars, `${name}: one bar per second with NoConnectionsLeftError`);
    const busyBars = run.series.databaseBusyErrors.length;
    assert.equal(busy.bars, busyBars, `${name}: one bar per second with DatabaseBusy errors`);
    assert.equal(busy.empty !== null, busyBars === 0, `${name}: an empty DatabaseBusy chart says so`);
    if (run.acquireMode) {
      assert.equal(waiting.series[0].points.length, run.series.waiting.length,
        `${name}: the waiting chart carries every sample of the pool's queue`);
      assert.equal(waiting.series[1].points.length, run.series.waitingRequests.length,
        `${name}: WaitingRequests from CloudWatch`);
    } else {
      assert.ok(waiting.empty !== null, `${name}: no queue without leases, and the chart says so`);
    }
  }
  say("15 charts drawn from the JSON's series");

  // One wait histogram per run, its bars the JSON's buckets.
  const histograms = await page.locator("svg.chart.histogram").evaluateAll((svgs) => svgs.map((svg) => ({
    bars: [...svg.querySelectorAll("rect title")].map((t) => Number(t.textContent.split(": ").pop())),
    empty: svg.querySelector("text.empty")?.textContent ?? null,
    width: svg.getBoundingClientRect().width,
  })));
  assert.equal(histograms.length, 3, "a wait histogram per run");
  for (const [index, name] of RUNS) {
    const wait = report.runs[name].leaseWait;
    const h = histograms[index];
    if (wait === null) {
      assert.ok(h.empty !== null, `${name}: no wait without leases, and the histogram says so`);
      continue;
    }
    assert.ok(h.width > 300, `${name}: the histogram is drawn at a readable size`);
    assert.deepEqual(h.bars, wait.histogram.filter((b) => b.count > 0).map((b) => b.count),
      `${name}: one bar per non-empty bucket, as counted in the JSON`);
  }
  say("3 wait histograms drawn from the JSON's buckets");

  // Hovering over the governed connections chart reads values out.
  const first = page.locator("svg.chart").first();
  await first.scrollIntoViewIfNeeded();
  const box = await first.boundingBox();
  await first.hover({ position: { x: box.width * 0.4, y: box.height * 0.5 } });
  const readout = await first.locator("text.readout").textContent();
  assert.match(readout, /^\d+(\.\d)? s .*connections open: \d+/, `hover read-out, got "${readout}"`);
  assert.equal(await first.locator("line.cursor").getAttribute("visibility"), "visible");
  say(`hover read-out: "${readout}"`);

  assert.deepEqual(problems, [], "no script errors");
  await page.screenshot({ path: screenshot, fullPage: true });
  say(`screenshot: ${screenshot}`);
} finally {
  await close();
}
