/*
 * The chart's "Referrals (Ocean)" section in a real browser (Debian's chromium via playwright-core):
 * a referral Ocean posted shows its service, requester, performer, status, form answers and
 * note; hostile HTML in the note (script, event handlers, javascript: URLs, styles, iframes)
 * does not run and is not in the page, while harmless formatting is kept. The admin console page
 * for Ocean messages registers a site (credentials shown once) and files an unmatched message.
 */
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { putResource } from '../../src/fhir/repository.ts';
import { CHROMIUM, haveChromium, launchChromium } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, TEST_ADMIN_TOKEN, type TestServer } from '../helpers/server.ts';
import { referralMessage } from './messages.ts';

const HOSTILE = [
  '<p>Please assess <b>left knee</b> and <i>ROM</i>.</p>',
  '<script>window.__pwned = "script"</script>',
  '<img src="x" onerror="window.__pwned = \'onerror\'">',
  '<p onclick="window.__pwned = \'onclick\'" id="clickme" style="position:fixed;top:0;left:0;width:100%;height:100%">click</p>',
  '<a id="jslink" href="javascript:window.__pwned=\'href\'">details</a>',
  '<iframe src="javascript:parent.__pwned=\'iframe\'"></iframe>',
  '<svg><script>window.__pwned="svg"</script></svg>',
  '<style>body{display:none}</style>',
  '<a href="https://ocean.cognisantmd.com/help">help</a>',
].join('');

const ADMIN = { username: 'ref.admin', password: 'referral admin password' };

describe.skipIf(!haveChromium)(`referrals in the chart, in a real browser (${CHROMIUM})`, () => {
  let t: TestDatabase;
  let s: TestServer;
  let browser: Browser;
  let basic: string;

  const post = (body: unknown) =>
    request(s.app)
      .post('/fhir/$process-message')
      .set('Authorization', basic)
      .set('Content-Type', 'application/fhir+json')
      .send(JSON.stringify(body));

  async function signedInPage() {
    const context = await browser.newContext();
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`${s.url}/login`);
    await page.fill('input[name=username]', ADMIN.username);
    await page.fill('input[name=password]', ADMIN.password);
    await Promise.all([page.waitForURL(/\/patients/), page.click('button[type=submit]')]);
    return { page, context, dialogs };
  }

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db);
    await createUser(s.ctx, {
      ...ADMIN,
      given_name: 'Rae',
      family_name: 'Admin',
      roles: ['admin', 'clinician'],
    });
    await putResource(t.db, {
      resourceType: 'Patient',
      id: 'pat-browser',
      name: [{ family: 'Browser', given: ['Bea'] }],
    });
    const r = await request(s.app)
      .post('/admin/api/ocean-integrations')
      .set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`)
      .send({ site_num: '2468' });
    basic = `Basic ${Buffer.from(`${r.body.username}:${r.body.password}`).toString('base64')}`;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await s?.stop();
    await t?.drop();
  });

  it('shows the referral, keeps harmless formatting, and runs none of the hostile HTML', async () => {
    expect(
      (
        await post(
          referralMessage({
            referralId: 'REF-BROWSER',
            patientRef: 'pat-browser',
            note: HOSTILE,
            status: 'active',
          }),
        )
      ).status,
    ).toBe(200);
    const { page, context, dialogs } = await signedInPage();
    try {
      await page.goto(`${s.url}/patients/pat-browser`);
      const section = page.locator('#ocean-referrals');
      await expect.poll(() => section.locator('h2').textContent()).toBe('Referrals (Ocean)');
      const text = (await section.textContent()) ?? '';
      expect(text).toContain('Knee assessment');
      expect(text).toContain('active');
      expect(await section.locator('[data-requester]').textContent()).toContain('Ada Lovelace');
      expect(await section.locator('[data-performer]').textContent()).toContain('Orthopedic Surgery');
      expect(text).toContain('Reason for referral');
      expect(text).toContain('Available in Ocean');
      const note = section.locator('[data-note]');
      expect(await note.locator('b').textContent()).toBe('left knee');
      expect(await note.locator('a[href="https://ocean.cognisantmd.com/help"]').count()).toBe(1);
      const html = await note.innerHTML();
      for (const bad of [
        '<script',
        'onerror',
        'onclick',
        'javascript:',
        '<iframe',
        '<style',
        'style=',
        '<svg',
      ])
        expect(html.toLowerCase()).not.toContain(bad);
      // Try to trigger what was there: click the would-be handlers and links.
      await page
        .locator('#clickme')
        .click({ trial: false })
        .catch(() => {});
      await page
        .locator('#jslink')
        .click()
        .catch(() => {});
      await page.waitForTimeout(200);
      expect(await page.evaluate(() => (globalThis as { __pwned?: string }).__pwned)).toBeUndefined();
      expect(dialogs).toEqual([]);
      // The page keeps its strict CSP.
      const response = await page.goto(`${s.url}/patients/pat-browser`);
      expect(response!.headers()['content-security-policy']).toContain("script-src 'self'");
    } finally {
      await context.close();
    }
  });

  it('the console registers a site (credentials shown once) and files an unmatched message', async () => {
    expect((await post(referralMessage({ referralId: 'REF-CONSOLE', hcn: '2222222222' }))).status).toBe(200);
    const { page, context } = await signedInPage();
    try {
      await page.goto(`${s.url}/admin/ocean`);
      await page.fill('#site_num', '1357');
      await Promise.all([
        page.waitForLoadState(),
        page.click('form[action="/admin/ocean/integrations"] button'),
      ]);
      const password = await page.locator('[data-password]').textContent();
      expect(password).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      await page.goto(`${s.url}/admin/ocean`);
      expect(await page.content()).not.toContain(password!);
      const row = page.locator('tr[data-message]').first();
      await row.locator('input[name=patient_id]').fill('pat-browser');
      await Promise.all([
        page.waitForURL(/\/admin\/ocean$/),
        row.locator('button', { hasText: 'Match and file' }).click(),
      ]);
      expect(await page.locator('tr[data-message]').count()).toBe(0);
      await page.goto(`${s.url}/patients/pat-browser`);
      expect(await page.locator('[data-referral]').count()).toBe(2);
    } finally {
      await context.close();
    }
  });
});
