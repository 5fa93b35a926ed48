// End-to-end browser flow in headless Chromium (Debian's chromium driven by
// playwright-core; see scripts/services.sh svc_browser).
//
//   node tests/browser/flow.mjs            the full flow against a running server
//   node tests/browser/selftest.mjs        the widget half against a local fake API
//
// Environment:
//   USERZ_CHROMIUM        browser executable (svc_browser: /usr/bin/chromium)
//   USERZ_NODE_PATH       node_modules holding playwright-core (svc_browser)
//   USERZ_BASE_URL        the Userz server (dashboard + API), e.g. http://127.0.0.1:8080
//   USERZ_DEMO_PAGE_URL   a page that loads /widget.js (default: USERZ_BASE_URL + /demo)
//   USERZ_SMTP_MAILDIR    maildir the SMTP sink writes sign-in mails into
//   USERZ_SIGNIN_EMAIL    address to sign in with
//   USERZ_ARTIFACTS_DIR   where screenshots go (default tests/browser/artifacts)
//   USERZ_RUN_TIMEOUT_MS  how long to wait for the run to reach its final status (default 180000)
//   USERZ_ATTACH_SCREENSHOT=0  submit without the screenshot attachment
//
// main() is driven by examples/reference-server/tests/browser.rs, which starts
// the server with a scripted model and checks the JSON result line.

import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** How long one page step may take. Generous: the suite runs beside
 * CPU-heavy tests (emulated VM boots), and a slow step is not a failure. */
const UI_TIMEOUT_MS = Number(process.env.USERZ_UI_TIMEOUT_MS || 60000);

const here = path.dirname(fileURLToPath(import.meta.url));

/** playwright-core, loaded from USERZ_NODE_PATH (ES modules ignore NODE_PATH). */
export function loadPlaywright() {
  const dir = process.env.USERZ_NODE_PATH;
  if (!dir) throw new Error('USERZ_NODE_PATH is not set: source scripts/services.sh and run svc_browser');
  return createRequire(path.join(dir, 'noop.js'))('playwright-core');
}

/** Headless Chromium with the flags this machine needs (see shared MACHINE-NOTES). */
export async function launchBrowser() {
  const executablePath = process.env.USERZ_CHROMIUM;
  if (!executablePath) throw new Error('USERZ_CHROMIUM is not set: run svc_browser');
  const { chromium } = loadPlaywright();
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Saves numbered screenshots into the artefacts directory. */
export function artifacts(dir = process.env.USERZ_ARTIFACTS_DIR || path.join(here, 'artifacts')) {
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return {
    dir,
    async shot(page, name) {
      n += 1;
      const file = path.join(dir, `${String(n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
  };
}

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/**
 * Widget half: opens the demo page, logs a console error, submits feedback
 * through the widget (with a screenshot of the page attached unless
 * attachScreenshot is false) and returns the feedback id the server gave.
 */
export async function widgetFlow(page, { demoUrl, art, text, attachScreenshot = true }) {
  await page.goto(demoUrl, { waitUntil: 'load' });
  await page.locator('#userz-feedback-button').waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  await page.evaluate(() => console.error('userz-browser-test: checkout failed with TypeError x is undefined'));
  await art.shot(page, 'demo-page');

  await page.locator('#userz-feedback-button').click();
  await page.locator('#userz-feedback-text').fill(text);
  await page.locator('#userz-feedback-severity').selectOption('high');
  if (attachScreenshot) {
    const png = await page.screenshot();
    await page.locator('#userz-feedback-screenshot').setInputFiles({ name: 'screen.png', mimeType: 'image/png', buffer: png });
  }
  await art.shot(page, 'widget-form-filled');

  await page.locator('#userz-feedback-submit').click();
  const status = page.locator('#userz-feedback-status');
  await page.waitForFunction(
    () => {
      const s = window.Userz && window.Userz.root() && window.Userz.root().getElementById('userz-feedback-status');
      return s && (s.dataset.state === 'sent' || s.dataset.state === 'error');
    },
    null,
    { timeout: UI_TIMEOUT_MS },
  );
  await art.shot(page, 'widget-submitted');
  const state = await status.getAttribute('data-state');
  if (state !== 'sent') {
    const code = await status.getAttribute('data-error-code');
    throw new Error(`widget submission failed: ${code}: ${await status.textContent()}`);
  }
  const id = await status.getAttribute('data-feedback-id');
  if (!id) throw new Error('the widget reported success without a feedback id');
  return id;
}

/** Decodes the bodies of a raw RFC 5322 message well enough to find a link. */
function mailText(raw) {
  let text = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  for (const block of raw.match(/(?:^[A-Za-z0-9+/=]{40,}\r?\n)+/gm) || []) {
    text += '\n' + Buffer.from(block.replace(/\s+/g, ''), 'base64').toString('utf8');
  }
  return text;
}

/** The sign-in link of the newest maildir message newer than `since` (ms). */
export async function readSignInLink(maildir, baseUrl, since, timeoutMs = UI_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const files = [];
    for (const sub of ['new', 'cur', '.']) {
      let names = [];
      try {
        names = readdirSync(path.join(maildir, sub));
      } catch {
        continue;
      }
      for (const name of names) {
        const file = path.join(maildir, sub, name);
        const st = statSync(file);
        if (st.isFile() && st.mtimeMs >= since - 1000) files.push({ file, mtime: st.mtimeMs });
      }
    }
    files.sort((a, b) => b.mtime - a.mtime);
    for (const { file } of files) {
      const links = mailText(readFileSync(file, 'utf8')).match(/https?:\/\/[^\s"'<>]+/g) || [];
      const link = links.find((l) => l.startsWith(baseUrl));
      if (link) return link;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no sign-in mail with a link to ${baseUrl} arrived in ${maildir}`);
}

/** Signs in to the dashboard with the e-mailed single-use link. */
export async function signIn(page, { baseUrl, maildir, email, art }) {
  const since = Date.now();
  await page.goto(`${baseUrl}/signin`);
  await page.locator('#signin-email').fill(email);
  await art.shot(page, 'signin');
  await page.locator('#signin-submit').click();
  await page.locator('#check-inbox').waitFor({ timeout: UI_TIMEOUT_MS });
  const link = await readSignInLink(maildir, baseUrl, since);
  await page.goto(link);
  await page.locator('#feedback-list').waitFor({ timeout: UI_TIMEOUT_MS });
  await art.shot(page, 'signed-in-queue');
}

/**
 * Opens the feedback in the dashboard, waits for its run to start (reloading
 * the server-rendered page), follows it to the run page and waits there, with
 * no reload, for the live (SSE) status to reach one of `finalStatuses`.
 * Prints `userz-flow: run-page-open LABEL STATUS` to stderr once the run page
 * is open and its event stream connected. Returns what the run page shows.
 */
export async function watchRun(page, { baseUrl, feedbackId, art, finalStatuses, timeoutMs, label }) {
  await page.goto(`${baseUrl}/`);
  await page.locator(`tr.feedback-row[data-feedback-id="${feedbackId}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
  await art.shot(page, `${label}-queue`);
  const deadline = Date.now() + timeoutMs;
  const runLink = page.locator('#feedback-runs a.run-link').first();
  for (;;) {
    await page.goto(`${baseUrl}/feedback/${encodeURIComponent(feedbackId)}`);
    if ((await runLink.count()) > 0) break;
    if (Date.now() > deadline) throw new Error(`feedback ${feedbackId}: no run started`);
    await new Promise((r) => setTimeout(r, 300));
  }
  await art.shot(page, `${label}-feedback-detail`);
  // Widths of the attached screenshots as the browser decoded them (0: broken).
  const attachmentImages = await page
    .locator('img.attachment-image')
    .evaluateAll((imgs) => imgs.map((i) => (i.complete ? i.naturalWidth : -1)));
  await runLink.click();
  await page.locator('#run-status[data-status]').waitFor({ timeout: UI_TIMEOUT_MS });
  const statusAtOpen = await page.locator('#run-status').getAttribute('data-status');
  const terminalAtOpen = await page.locator('#run-status').getAttribute('data-terminal');
  // A reload would clear this marker: the final status must arrive live.
  await page.evaluate(() => { window.__userzNoReload = true; });
  if (!finalStatuses.includes(statusAtOpen)) {
    await page.locator('#run[data-live="connected"]').waitFor({ timeout: UI_TIMEOUT_MS });
  }
  await art.shot(page, `${label}-run-opened`);
  // The driving test holds the run's first model answer until it reads this.
  console.error(`userz-flow: run-page-open ${label} ${statusAtOpen}`);
  await page.waitForFunction(
    (wanted) => {
      const s = document.getElementById('run-status');
      return s && wanted.includes(s.getAttribute('data-status'));
    },
    finalStatuses,
    { timeout: Math.max(1000, deadline - Date.now()) },
  );
  await art.shot(page, `${label}-run-finished`);
  const text = async (sel) => ((await page.locator(sel).count()) > 0 ? (await page.locator(sel).textContent()).trim() : null);
  await page.locator('#run[data-live="ended"]').waitFor({ timeout: 15000 }).catch(() => {});
  return {
    status: await page.locator('#run-status').getAttribute('data-status'),
    statusAtOpen,
    terminalAtOpen,
    attachmentImages,
    liveAtEnd: await page.locator('#run').getAttribute('data-live'),
    notReloaded: await page.evaluate(() => window.__userzNoReload === true),
    timeline: await page.locator('#run-timeline li[data-event]').evaluateAll((lis) => lis.map((li) => li.dataset.event)),
    guardrailFile: await text('#run-guardrail-file'),
    guardrailRule: await text('#run-guardrail-rule'),
    // Rendered from the stored transcript when the page is loaded.
    transcriptTools: await (async () => {
      await page.reload();
      return page.locator('#run-transcript-entries li.transcript-tool').evaluateAll((lis) => lis.map((li) => li.dataset.tool));
    })(),
  };
}

/** Every status a run ends in (the run page stops listening at these). */
export const TERMINAL_RUN_STATUSES = ['pr_opened', 'branch_pushed', 'failed', 'pr_failed', 'timed_out'];

async function main() {
  const baseUrl = need('USERZ_BASE_URL').replace(/\/+$/, '');
  const demoUrl = process.env.USERZ_DEMO_PAGE_URL || `${baseUrl}/demo`;
  const art = artifacts();
  const timeoutMs = Number(process.env.USERZ_RUN_TIMEOUT_MS || 180000);
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    // 1. A report from the demo page; its run pushes a branch (or opens a PR).
    const first = await widgetFlow(page, {
      demoUrl,
      art,
      text: 'userz-browser-test: the save button does nothing and the console shows a TypeError',
      attachScreenshot: process.env.USERZ_ATTACH_SCREENSHOT !== '0',
    });
    console.error(`feedback ${first} submitted`);
    await signIn(page, { baseUrl, maildir: need('USERZ_SMTP_MAILDIR'), email: need('USERZ_SIGNIN_EMAIL'), art });
    const watch = (feedbackId, label) =>
      watchRun(page, { baseUrl, feedbackId, art, finalStatuses: TERMINAL_RUN_STATUSES, timeoutMs, label });
    const firstRun = await watch(first, 'first');
    console.error(`first run reached ${firstRun.status}`);
    // 2. A second report whose run touches .github/workflows/: refused.
    const second = await widgetFlow(page, {
      demoUrl,
      art,
      text: 'userz-browser-test: please make the save button work on the second try as well',
      attachScreenshot: false,
    });
    const secondRun = await watch(second, 'second');
    console.error(`second run reached ${secondRun.status}; screenshots in ${art.dir}`);
    // The last stdout line is the result the Rust test checks.
    console.log(JSON.stringify({ first, firstRun, second, secondRun, artifacts: art.dir }));
  } finally {
    await browser.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
