// The trace page in headless chromium (run by scripts/checks/40-trace-page.sh, which starts the
// stack and the executions and passes them in the environment). Exits non-zero on the first
// failed expectation, with what the page showed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { openBrowser } from "../lib/browser.mjs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/checks/40-trace-page.sh)`);
  return v;
};
const url = env("TRACE_URL");
const out = env("TRACE_OUT");
const pool = env("TRACE_POOL");
const connectionArn = env("CONNECTION_ARN");
const failedArn = env("FAILED_ARN");
const harnessArn = env("HARNESS_ARN");
const caughtArn = env("CAUGHT_ARN");
const connectionMachineArn = env("CONNECTION_MACHINE_ARN");
const releaseFunction = env("RELEASE_FUNCTION_NAME");
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const connectionStates = Object.keys(
  JSON.parse(readFileSync(path.join(root, "statemachines/connection.asl.json"), "utf8")).States,
);
const began = Date.now();
const step = (text) => console.log(`trace-page: ${((Date.now() - began) / 1000).toFixed(1)}s ${text}`);

const { page, problems, requests, close } = await openBrowser("trace-page", { width: 1400, height: 1000 });

async function statusOf(state) {
  return page.getAttribute(`#graph g.node[data-state="${state}"]`, "data-status");
}
async function statuses(states) {
  return Object.fromEntries(await Promise.all(states.map(async (s) => [s, await statusOf(s)])));
}
// An action of the stack's Step Functions API, called the way the SDKs call it.
async function stepFunctions(action, request) {
  const response = await fetch(url + "/", {
    method: "POST",
    headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AWSStepFunctions." + action },
    body: JSON.stringify(request),
  });
  const body = await response.json();
  assert.ok(response.ok, `${action}: ${JSON.stringify(body)}`);
  return body;
}
async function startExecution(machineArn, input) {
  return (await stepFunctions("StartExecution", { stateMachineArn: machineArn, input: JSON.stringify(input) })).executionArn;
}
async function openExecution(arn, finalStatus, timeout) {
  await page.goto(`${url}/trace#execution=${encodeURIComponent(arn)}`);
  await page.waitForSelector(`#exec-status[data-status="${finalStatus}"]`, { timeout });
  // The final refresh has drawn the graph and the history with the execution's end.
  await page.waitForSelector("#graph g.node[data-kind='end']");
}

try {
  // --- the list: machines, executions newest first, status filter ----------------------------
  step("list of state machines and executions");
  await page.goto(`${url}/trace`);
  await page.waitForSelector("li[data-machine]");
  const machineNames = await page.$$eval("li[data-machine]", (els) => els.map((e) => e.dataset.machine));
  const connectionMachine = connectionArn.split(":")[6];
  assert.ok(machineNames.includes(connectionMachine), `machines listed: ${machineNames}`);
  await page.click(`li[data-machine="${connectionMachine}"]`);
  await page.waitForSelector(`#executions tr[data-execution="${connectionArn.split(":").pop()}"]`);
  await page.selectOption("#status-filter", "FAILED");
  await page.waitForFunction(() => location.hash.includes("status=FAILED"));
  await page.waitForSelector(`#executions tr[data-execution="${failedArn.split(":").pop()}"]`, { timeout: 30000 });
  const filtered = await page.$$eval("#executions tbody tr[data-execution] .badge", (els) => els.map((e) => e.dataset.status));
  assert.ok(filtered.length >= 1 && filtered.every((s) => s === "FAILED"), `filtered statuses: ${filtered}`);

  // --- one connection execution: graph, path, history -------------------------------------
  step("connection execution: graph and path");
  await openExecution(connectionArn, "SUCCEEDED", 60000);
  const drawn = await page.$$eval("#graph g.node[data-kind='state']", (els) => els.map((e) => e.dataset.state));
  assert.deepEqual([...drawn].sort(), [...connectionStates].sort(), "every state of connection.asl.json is drawn");
  const taken = ["ValidateInput", "CheckTypes", "ApplyDefaults", "Prepare", "BuildCacheKey", "ChooseAcquireMode", "Acquire", "Query", "Release", "WriteCache", "Served"];
  const notTaken = connectionStates.filter((s) => !taken.includes(s));
  for (const [state, status] of Object.entries(await statuses(taken))) assert.equal(status, "succeeded", `${state} on the path`);
  for (const [state, status] of Object.entries(await statuses(notTaken))) assert.equal(status, "not-reached", `${state} off the path`);
  assert.equal(await page.getAttribute(`#graph g.edge[data-from="Acquire"][data-to="Query"]`, "data-status"), "succeeded");
  assert.equal(await page.getAttribute(`#graph g.edge[data-from="Acquire"][data-to="LookupCache"]`, "data-kind"), "catch");
  assert.equal(await page.getAttribute(`#graph g.edge[data-from="Acquire"][data-to="LookupCache"]`, "data-status"), "not-reached");
  assert.equal(await page.getAttribute(`#graph g.node[data-kind='end']`, "data-status"), "succeeded");

  step("connection execution: history");
  const api = await page.evaluate(async (arn) => (await fetch(`/trace/api/history?arn=${encodeURIComponent(arn)}`)).json(), connectionArn);
  const rows = await page.$$eval("#history tbody tr[data-event-id]", (els) => els.map((e) => e.dataset.type));
  assert.equal(rows.length, api.events.length, "one row per event");
  assert.equal(rows[0], "ExecutionStarted");
  assert.equal(rows[rows.length - 1], "ExecutionSucceeded");
  assert.ok(rows.includes("TaskScheduled") && rows.includes("TaskSucceeded"), `types: ${rows}`);
  const scheduled = await page.$("#history tbody tr[data-type='TaskScheduled']");
  const id = await scheduled.getAttribute("data-event-id");
  await scheduled.click();
  const details = await page.textContent(`#history tr[data-details-for="${id}"] pre`);
  assert.match(details, /AcquireFunction/, "expanded details show the task's parameters");
  // Selecting a state shows its details and filters the history to its events.
  await page.click(`#graph g.node[data-state="Query"]`);
  await page.waitForSelector("#state-panel h3");
  assert.equal(await page.textContent("#state-panel h3"), "Query");
  const queryRows = await page.$$eval("#history tbody tr[data-event-id] td:nth-child(3)", (els) => els.map((e) => e.textContent));
  assert.ok(queryRows.length >= 4 && queryRows.every((s) => s === "Query"), `rows of Query: ${queryRows}`);
  await page.screenshot({ path: path.join(out, "trace-connection.png"), fullPage: true });

  step("caught error: the Catch path");
  await openExecution(caughtArn, "FAILED", 60000);
  assert.deepEqual(await statuses(["Acquire", "Query", "ReleaseAfterFailedQuery", "QueryFailed", "Release"]), {
    Acquire: "succeeded", Query: "caught", ReleaseAfterFailedQuery: "succeeded", QueryFailed: "failed", Release: "not-reached",
  });
  assert.equal(await page.getAttribute(`#graph g.edge[data-from="Query"][data-to="ReleaseAfterFailedQuery"]`, "data-status"), "caught");
  assert.equal(await page.textContent("#exec-error"), "UnknownQuery");

  step("a running execution: live refresh");
  const slowArn = await startExecution(connectionMachineArn, { pool, query: "listEmployees", params: {}, holdMs: 3000, mode: "polling" });
  await page.goto(`${url}/trace#execution=${encodeURIComponent(slowArn)}`);
  await page.waitForSelector(`#graph g.node[data-state="Query"][data-status="running"]`, { timeout: 20000 });
  assert.equal(await page.getAttribute("#live", "class"), "on", "the page says it is live");
  assert.equal(await statusOf("Acquire"), "succeeded");
  assert.equal(await statusOf("Served"), "not-reached");
  await page.screenshot({ path: path.join(out, "trace-running.png"), fullPage: true });
  // No reload: the page's polling brings the end.
  await page.waitForSelector(`#exec-status[data-status="SUCCEEDED"]`, { timeout: 30000 });
  await page.waitForSelector(`#graph g.node[data-state="Served"][data-status="succeeded"]`);
  assert.equal(await statusOf("Query"), "succeeded");
  assert.equal(await page.getAttribute("#live", "class"), "");

  step("failed execution: the failed path");
  await openExecution(failedArn, "FAILED", 30000);
  const failed = await statuses(["ValidateInput", "InvalidInput", "CheckTypes"]);
  assert.deepEqual(failed, { ValidateInput: "succeeded", InvalidInput: "failed", CheckTypes: "not-reached" });
  assert.equal(await page.textContent("#exec-error"), "InvalidInput");
  assert.equal(await page.getAttribute(`#graph g.edge[data-from="InvalidInput"][data-to="__end__"]`, "data-status"), "failed");

  // --- a callback task: waiting for its token, then answered --------------------------------
  step("a task waiting for its callback");
  // The release function, told of an execution whose input names no pool, answers at once; the
  // task then waits for SendTaskSuccess with its token.
  const callbackMachine = (await stepFunctions("CreateStateMachine", {
    name: `trace-callback-${Date.now()}`,
    roleArn: "arn:aws:iam::123456789012:role/local",
    definition: JSON.stringify({ StartAt: "Wait", States: { Wait: {
      Type: "Task", Resource: "arn:aws:states:::lambda:invoke.waitForTaskToken", TimeoutSeconds: 120, End: true,
      Parameters: { FunctionName: releaseFunction, Payload: {
        "detail-type": "Step Functions Execution Status Change",
        detail: { "executionArn.$": "$$.Execution.Id", "taskToken.$": "$$.Task.Token" } } } } } }),
  })).stateMachineArn;
  const waitingArn = await startExecution(callbackMachine, {});
  await page.goto(`${url}/trace#execution=${encodeURIComponent(waitingArn)}`);
  await page.waitForSelector(`#graph g.node[data-state="Wait"][data-status="waiting"]`, { timeout: 20000 });
  await page.waitForSelector("#exec-waiting");
  assert.equal(await page.textContent("#exec-waiting"), "Wait");
  assert.equal(await page.getAttribute("#exec-status", "data-status"), "RUNNING");
  assert.equal(await page.getAttribute("#live", "class"), "on", "a waiting execution is live");
  const legend = await page.$$eval("#graph-section .legend span", (els) => els.map((e) => e.textContent));
  assert.ok(legend.includes("waiting for callback"), `legend: ${legend}`);
  await page.screenshot({ path: path.join(out, "trace-waiting.png"), fullPage: true });
  const { events } = await stepFunctions("GetExecutionHistory", { executionArn: waitingArn });
  const scheduledTask = events.find((e) => e.type === "TaskScheduled");
  const taskToken = JSON.parse(scheduledTask.taskScheduledEventDetails.parameters).Payload.detail.taskToken;
  await stepFunctions("SendTaskSuccess", { taskToken, output: JSON.stringify({ leaseId: "from-the-check" }) });
  // No reload: the page's polling brings the end.
  await page.waitForSelector(`#exec-status[data-status="SUCCEEDED"]`, { timeout: 30000 });
  await page.waitForSelector(`#graph g.node[data-state="Wait"][data-status="succeeded"]`);
  assert.equal(await page.$("#exec-waiting"), null, "nothing waits any more");

  // --- the harness: Map iterations and their child executions ------------------------------
  step("harness: iterations");
  await openExecution(harnessArn, "SUCCEEDED", 90000);
  assert.equal(await statusOf("RunIterations"), "succeeded");
  assert.equal(await statusOf("RunConnectionWorkflow"), "succeeded");
  assert.equal(await statusOf("CountAsFailed"), "not-reached");
  assert.equal(await page.getAttribute(`#graph g.node[data-state="RunConnectionWorkflow"]`, "data-kind"), "state");
  const iterations = await page.$$eval("#iterations tr[data-iteration]", (els) => els.map((e) => [e.dataset.iteration, e.dataset.child]));
  assert.equal(iterations.length, 3, `iterations: ${JSON.stringify(iterations)}`);
  assert.ok(iterations.every(([, child]) => child.includes(":execution:")), "each iteration names its child");
  assert.equal(new Set(iterations.map(([, c]) => c)).size, 3, "three distinct children");
  // Each iteration shows its result (the child's outcome), and the filter finds them.
  await page.fill("#iteration-filter", "SERVED");
  assert.equal(await page.$$eval("#iterations tr[data-iteration]", (els) => els.length), 3, "three served iterations");
  await page.fill("#iteration-filter", "FALLBACK");
  assert.equal(await page.$$eval("#iterations tr[data-iteration]", (els) => els.length), 0, "no fallback");
  await page.fill("#iteration-filter", "");
  await page.screenshot({ path: path.join(out, "trace-harness.png"), fullPage: true });

  step("harness: an iteration opens its child's trace");
  const [label, child] = iterations[1];
  await page.click(`#iterations tr[data-iteration="${label}"] a.child-link`);
  await page.waitForFunction((arn) => decodeURIComponent(location.hash) === `#execution=${arn}`, child);
  await page.waitForSelector("#exec-status[data-status='SUCCEEDED']");
  await page.waitForFunction((name) => document.querySelector("#exec-title")?.textContent.includes(name), child.split(":").pop());
  await page.waitForSelector(`#graph g.node[data-state="Served"][data-status="succeeded"]`);
  const childDrawn = await page.$$eval("#graph g.node[data-kind='state']", (els) => els.length);
  assert.equal(childDrawn, connectionStates.length, "the child is a connection workflow");
  const startedBy = await page.getAttribute("#summary a.exec-link", "href");
  assert.equal(decodeURIComponent(startedBy), `#execution=${harnessArn}`, "the child links back to its harness");

  // --- the pool's metrics ------------------------------------------------------------------
  step(`metrics chart of pool ${pool}`);
  // The chart shows the pool named in the execution's input.
  await page.waitForFunction((p) => document.querySelector("#pool")?.value === p, pool, { timeout: 15000 });
  // Metrics reach CloudWatch a moment after the functions log them; the chart polls.
  await page.waitForSelector("#metrics-chart circle.point[data-metric='RemainingConnections']", { timeout: 30000 });
  const points = await page.$$eval("#metrics-chart circle.point", (els) => els.length);
  assert.ok(points >= 1, `points: ${points}`);
  await page.screenshot({ path: path.join(out, "trace-child.png"), fullPage: true });

  // --- self-contained: nothing but the stack was asked for anything --------------------------
  const foreign = requests.filter((r) => !r.startsWith(url) && !r.startsWith("data:"));
  assert.deepEqual(foreign, [], "requests outside the stack");
  assert.deepEqual(problems, [], "errors in the page");
  step(`passed (${requests.length} requests, ${points} metric points); screenshots in target/trace-check/`);
} catch (e) {
  try { await page.screenshot({ path: path.join(out, "trace-failure.png"), fullPage: true }); } catch (_) { /* page gone */ }
  console.error(`trace-page: FAILED at ${page.url()}\n${e.stack || e}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await close();
}
