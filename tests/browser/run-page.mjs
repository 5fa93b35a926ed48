// Opens a finished run's page in headless Chromium as a signed-in member and
// prints what a person sees there, as one JSON line: the timeline's stages
// (with how long each took), the status, and the diff's lines; then the
// report's page and the feedback list: whether each page fits a phone's width,
// and what each list row shows.
//
//   USERZ_COOKIES       a signed-in session's cookies, `name=value; name2=value2`
//   USERZ_RUN_URL       the run page, e.g. http://127.0.0.1:8080/runs/run_…
//   USERZ_CHROMIUM, USERZ_NODE_PATH, USERZ_ARTIFACTS_DIR   as for flow.mjs
//
// Driven by examples/reference-server/tests/first_command.rs.

import { artifacts, launchBrowser } from './flow.mjs';

const TIMEOUT_MS = Number(process.env.USERZ_UI_TIMEOUT_MS || 60000);

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const browser = await launchBrowser();
try {
  const art = artifacts();
  const runUrl = need('USERZ_RUN_URL');
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  await context.addCookies(
    need('USERZ_COOKIES')
      .split(';')
      .map((c) => c.trim())
      .filter(Boolean)
      .map((c) => {
        const i = c.indexOf('=');
        return { name: c.slice(0, i), value: c.slice(i + 1), url: new URL(runUrl).origin };
      }),
  );
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await page.goto(runUrl);
  await page.waitForSelector('#run-timeline li');
  await page.waitForSelector('#run-diff');
  const seen = await page.evaluate(() => ({
    status: document.getElementById('run-status').dataset.status,
    stages: [...document.querySelectorAll('#run-timeline li')].map((li) => ({
      event: li.dataset.event,
      took: (li.querySelector('.took') || {}).textContent || '',
    })),
    diffAdded: [...document.querySelectorAll('#run-diff .add')].map((s) => s.textContent),
    diffFiles: [...document.querySelectorAll('#run-diff .file')].map((s) => s.textContent),
    overflowsPhone: document.documentElement.scrollWidth > window.innerWidth + 1,
  }));
  await art.shot(page, 'first-command-run-page');
  // The same session on the report's page and the feedback list, on the phone.
  const feedbackHref = await page.getAttribute('#run-feedback', 'href');
  const overflows = () => document.documentElement.scrollWidth > window.innerWidth + 1;
  await page.goto(new URL(feedbackHref, runUrl).href);
  seen.feedbackOverflowsPhone = await page.evaluate(overflows);
  await art.shot(page, 'first-command-feedback-page');
  await page.goto(new URL('/', runUrl).href);
  await page.waitForSelector('#feedback-list .feedback-row');
  seen.listOverflowsPhone = await page.evaluate(overflows);
  seen.listRows = await page.evaluate(() =>
    [...document.querySelectorAll('#feedback-list .feedback-row')].map((tr) => ({
      id: tr.dataset.feedbackId,
      report: (tr.querySelector('.feedback-link') || {}).textContent || '',
      severity: (tr.querySelector('.sev') || {}).textContent || '',
      label: (tr.querySelector('.label') || {}).textContent || '',
      outcome: (tr.querySelector('.outcome') || {}).textContent || '',
    })),
  );
  await art.shot(page, 'first-command-feedback-list');
  process.stdout.write(JSON.stringify(seen) + '\n');
} finally {
  await browser.close();
}
