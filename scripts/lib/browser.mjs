// Debian's chromium, headless, driven by playwright-core: the one way the page checks open a
// browser (scripts/checks/trace-page.mjs, scripts/demo/report-page.mjs). scripts/lib/browser.bash
// installs both; CHROMIUM names the executable (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

// No sandbox (checks run as root in containers), no GPU, and nothing of chromium's own network
// traffic (updates, sync, QUIC), so that the page's requests are all there is.
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

// A fresh profile and one page that records its script errors (`problems`) and every URL it
// requests (`requests`). `close()` ends the browser and removes the profile.
export async function openBrowser(name, viewport) {
  const profile = mkdtempSync(path.join(tmpdir(), `${name}-profile-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
    viewport,
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  const requests = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
  page.on("request", (r) => requests.push(r.url()));
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { page, problems, requests, close };
}
