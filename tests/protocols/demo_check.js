// Drives the demo page in Debian's chromium through playwright-core.
// usage: node demo_check.js BASE_URL MODEL IMAGE BAD_FILE OUT_DIR
// Prints one JSON object: what the page showed, the tab order, every request
// the page made, console errors; writes OUT_DIR/demo.png and demo-error.png.
// Requests to anything but BASE_URL are aborted (the page must work offline).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

async function main() {
  const [base, model, image, bad, outDir] = process.argv.slice(2);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'resnetd-demo-profile-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-quic'],
  });
  const out = { requests: [], blocked: [], consoleErrors: [] };
  try {
    await ctx.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(base + '/')) return route.continue();
      out.blocked.push(u);
      return route.abort();
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('request', (r) => out.requests.push(r.method() + ' ' + r.url()));
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    const resp = await page.goto(base + '/', { waitUntil: 'load' });
    out.pageStatus = resp.status();
    out.csp = resp.headers()['content-security-policy'] || '';
    await page.waitForSelector('body[data-models-loaded]', { timeout: 30000 });
    out.models = await page.$$eval('#model option', (os) => os.map((o) => o.value));

    // keyboard: Tab from the top reaches the model chooser, then the file picker
    out.tabOrder = [];
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab');
      out.tabOrder.push(await page.evaluate(() => document.activeElement.id ||
        document.activeElement.tagName.toLowerCase()));
    }
    // choose the model with the keyboard when it is not the first one
    await page.focus('#model');
    await page.selectOption('#model', model);
    out.modelInfo = await page.textContent('#model-info');

    await page.setInputFiles('#file', image);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]',
      { timeout: 60000 });
    out.state = await page.getAttribute('body', 'data-state');
    out.rows = await page.$$eval('#predictions li', (lis) => lis.map((li) => ({
      label: li.querySelector('.label').textContent,
      index: Number(li.dataset.index),
      percent: li.querySelector('.prob').textContent,
      bar: li.querySelector('.bar > span').style.width,
    })));
    out.status = await page.textContent('#status');
    out.timing = await page.textContent('#timing');
    await page.screenshot({ path: path.join(outDir, 'demo.png'), fullPage: true });

    // an API error is shown, not swallowed
    await page.setInputFiles('#file', bad);
    await page.waitForSelector('body[data-state="error"]', { timeout: 60000 });
    out.errorVisible = await page.isVisible('#error');
    out.errorTitle = await page.textContent('#error-title');
    out.errorDetail = await page.textContent('#error-detail');
    out.rowsAfterError = await page.$$eval('#predictions li', (lis) => lis.length);
    await page.screenshot({ path: path.join(outDir, 'demo-error.png'), fullPage: true });
  } finally {
    await ctx.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
