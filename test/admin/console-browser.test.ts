/*
 * The admin console in a real browser (Debian's /usr/bin/chromium via playwright-core), from an
 * empty install to a working Ocean launch:
 *   sign in as an admin → register Ocean (secret shown once) → add a site with its SEK →
 *   allowlist (copy, download) → rotate keys → import a patient (upload progress, summary) →
 *   launch Ocean from the chart (a stand-in relying party on openid-client completes the
 *   confidential-client EHR launch and receives the SEK) → audit trail.
 * Then: no response the browser saw (but the one page that shows the secret once), no log line
 * and no audit row holds the SEK (plain or Base64) or the client secret.
 * Screenshots: test-artifacts/admin/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/accounts/accounts.ts';
import { CHROMIUM, haveChromium, launchChromium } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { OceanStandIn } from '../helpers/ocean-stand-in.ts';
import { capturedLogger, startTestServer, type TestServer } from '../helpers/server.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'admin');
const ADMIN = { username: 'it.admin', password: 'browser admin password' };
const SITE = '8642';
const SEK = 'Browser-SEK: ünïcødé/+= 2468 secret';
const SEK_B64 = Buffer.from(SEK, 'utf8').toString('base64');
const PATIENT_ID = '0b7c5a9e-3d2f-4e1a-9c8b-7a6f5e4d3c2b';

describe.skipIf(!haveChromium)(`admin console in a real browser (${CHROMIUM})`, () => {
  let t: TestDatabase;
  let s: TestServer;
  let browser: Browser;
  let ocean: OceanStandIn;
  const { logger, lines: logLines } = capturedLogger('debug');
  const responses: Promise<{ method: string; url: string; body: string }>[] = [];

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await createTestDatabase();
    s = await startTestServer(t.db, {}, logger);
    await createUser(s.ctx, {
      ...ADMIN,
      given_name: 'Ivy',
      family_name: 'Admin',
      roles: ['admin', 'clinician'],
    });
    ocean = new OceanStandIn();
    await ocean.listen();
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await ocean?.close();
    await s?.stop();
    await t?.drop();
  });

  it('takes an admin from an empty install to a launched Ocean, leaking no secret', async () => {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
    context.on('response', (r) => {
      responses.push(
        r.text().then(
          (body) => ({ method: r.request().method(), url: r.url(), body }),
          () => ({ method: r.request().method(), url: r.url(), body: '' }),
        ),
      );
    });
    const page = await context.newPage();
    page.on('dialog', (d) => void d.accept());

    // Sign in as the administrator.
    await page.goto(`${s.url}/admin`);
    await page.waitForURL(/\/login/);
    await page.fill('#username', ADMIN.username);
    await page.fill('#password', ADMIN.password);
    await Promise.all([page.waitForURL(`${s.url}/admin`), page.click('button[type=submit]')]);
    await shot(page, '01-overview-empty');
    expect(await page.locator('h1').first().textContent()).toBe('Administration');

    // Register Ocean: a confidential client, PKCE on (the warning shows only while it is off).
    await page.getByRole('link', { name: 'Register Ocean' }).click();
    await page.waitForURL(`${s.url}/admin/clients/new`);
    await page.fill('#name', 'Ocean (stand-in)');
    await page.fill('#redirect_uris', ocean.redirectUri);
    await page.fill('#launch_url', ocean.launchUrl);
    await page.selectOption('#token_endpoint_auth_method', 'client_secret_post');
    await page.selectOption('#id_token_signed_response_alg', 'RS256');
    expect(await page.isVisible('#pkce-warning')).toBe(false);
    await page.uncheck('#require_pkce');
    expect(await page.isVisible('#pkce-warning')).toBe(true);
    await shot(page, '02-register-client-pkce-warning');
    await page.check('#require_pkce');
    expect(await page.isVisible('#pkce-warning')).toBe(false);
    await Promise.all([
      page.waitForURL(`${s.url}/admin/clients`),
      page.getByRole('button', { name: 'Register', exact: true }).click(),
    ]);
    ocean.clientId = (await page.textContent('#client-id-value'))!.trim();
    ocean.clientSecret = (await page.textContent('#client-secret-value'))!.trim();
    expect(ocean.clientSecret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    await shot(page, '03-client-secret-once');

    // Add a site with its SEK and two chart buttons.
    await Promise.all([
      page.waitForURL(/\/admin\/clients\/[^/]+$/),
      page.getByRole('link', { name: 'Continue: add Ocean sites' }).click(),
    ]);
    await page.fill('#site_num', SITE);
    await page.fill('#shared_encryption_key', SEK);
    await page.fill('#actions', 'viewMap | Ocean Health Map\nreferDirect | New eReferral');
    await Promise.all([
      page.waitForURL(new RegExp(`#site-${SITE}$`)),
      page.click('button:has-text("Add site")'),
    ]);
    const siteText = (await page.textContent(`#site-${SITE}`))!;
    expect(siteText).toContain('Ocean Health Map');
    expect(siteText).toMatch(/••••••cret/);
    expect(await page.content()).not.toContain(SEK);
    await shot(page, '04-client-with-site');

    // The allowlist: seven values, copy, download.
    await Promise.all([
      page.waitForURL(/\/allowlist$/),
      page.getByRole('link', { name: 'Allowlist values for Ocean' }).click(),
    ]);
    const fhir = `${s.url}/fhir`;
    expect(await page.textContent('[data-value=server_url]')).toBe(fhir);
    expect(await page.textContent('[data-value=client_id]')).toBe(ocean.clientId);
    expect(await page.textContent('[data-value=authorization_endpoint]')).toBe(`${fhir}/auth`);
    expect(await page.textContent('[data-value=token_endpoint]')).toBe(`${fhir}/token`);
    expect(await page.textContent('[data-value=token_issuer_url]')).toBe(fhir);
    expect(await page.textContent('[data-value=smart_configuration_url]')).toBe(
      `${fhir}/.well-known/smart-configuration`,
    );
    expect(await page.textContent('[data-value=openid_configuration_url]')).toBe(
      `${fhir}/.well-known/openid-configuration`,
    );
    const emailText = await page.inputValue('#allowlist-text');
    expect(emailText).toContain(`"jwks_uri": "${fhir}/jwks"`);
    await page.click('button:has-text("Copy all for e-mail")');
    await page.waitForSelector('button:has-text("Copied")');
    for (const d of await page.locator('details').all())
      await d.evaluate((el) => el.setAttribute('open', ''));
    await shot(page, '05-allowlist');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download .txt' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('ocean-allowlist.txt');

    // Keys: rotate.
    await page.goto(`${s.url}/admin/keys`);
    const activeBefore = await page.locator('tr.key-active td:first-child').allTextContents();
    const nextBefore = await page.locator('tr.key-next td:first-child').allTextContents();
    await shot(page, '06-keys-before-rotation');
    await Promise.all([page.waitForURL(`${s.url}/admin/keys`), page.click('button:has-text("Rotate keys")')]);
    expect(await page.textContent('[role=status]')).toContain('Keys rotated');
    expect((await page.locator('tr.key-active td:first-child').allTextContents()).sort()).toEqual(
      nextBefore.sort(),
    );
    const retired = await page.locator('tr.key-retired td:first-child').allTextContents();
    for (const kid of activeBefore) expect(retired).toContain(kid);
    await shot(page, '07-keys-after-rotation');

    // Import a patient through the upload page.
    await page.goto(`${s.url}/admin/import`);
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: `urn:uuid:${PATIENT_ID}`,
          resource: {
            resourceType: 'Patient',
            name: [{ family: 'Tremblay', given: ['Marie'] }],
            gender: 'female',
            birthDate: '1980-04-02',
          },
          request: { method: 'POST', url: 'Patient' },
        },
      ],
    };
    await page.setInputFiles('#bundle', {
      name: 'one-patient.json',
      mimeType: 'application/fhir+json',
      buffer: Buffer.from(JSON.stringify(bundle)),
    });
    await page.click('#import-button');
    await page.waitForSelector('#import-result:not([hidden])');
    expect(await page.textContent('#import-result-title')).toBe('Imported one-patient.json');
    expect(await page.textContent('#import-result-body')).toContain('1 entry processed');
    await shot(page, '08-import-done');
    await page.setInputFiles('#bundle', {
      name: 'not-a-bundle.json',
      mimeType: 'application/json',
      buffer: Buffer.from('{"resourceType":"Patient"}'),
    });
    await page.click('#import-button');
    await page.waitForSelector('#import-result.result-error');
    expect(await page.textContent('#import-result-title')).toBe('Nothing was imported');
    await shot(page, '09-import-refused');

    // Users screen.
    await page.goto(`${s.url}/admin/users`);
    await shot(page, '10-users');

    // Launch Ocean from the chart: SSO, patient and the SEK typed in the console.
    await page.goto(`${s.url}/patients/${PATIENT_ID}`);
    await shot(page, '11-chart-with-ocean-buttons');
    const [ocPage] = await Promise.all([
      context.waitForEvent('page'),
      page.click('.ocean-buttons a[data-action=viewMap]'),
    ]);
    await ocPage.waitForSelector('#result', { timeout: 30_000 });
    expect(ocean.errors).toEqual([]);
    expect(await ocPage.textContent('#result')).toContain(`at site ${SITE}, action viewMap`);
    await shot(ocPage, '12-ocean-launched');
    const launched = ocean.results[0]!;
    expect(launched.launchParams.action).toBe('viewMap');
    expect(launched.tokenResponse.oceanSharedEncryptionKey).toBe(SEK_B64);
    expect(launched.tokenResponse.patient).toBe(PATIENT_ID);
    // the stand-in read the patient with the launch's token, as a confidential client
    expect(launched.patient.id).toBe(PATIENT_ID);

    // The audit trail shows the admin's changes.
    await page.goto(`${s.url}/admin/audit?action=admin.&user=${ADMIN.username}`);
    const actions = await page.locator('.audit-table tbody td:nth-child(2)').allTextContents();
    for (const a of ['admin.client.create', 'admin.site.create', 'admin.keys.rotate', 'admin.import.console'])
      expect(actions).toContain(a);
    await shot(page, '13-audit');

    // No secret anywhere it must not be.
    const seen = await Promise.all(responses);
    const secretPage = seen.filter((r) => r.method === 'POST' && r.url === `${s.url}/admin/clients`);
    expect(secretPage).toHaveLength(1);
    expect(secretPage[0]!.body).toContain(ocean.clientSecret);
    const others = seen.filter((r) => r !== secretPage[0]);
    expect(others.length).toBeGreaterThan(20);
    const secrets = { sek: SEK, sekBase64: SEK_B64, clientSecret: ocean.clientSecret };
    for (const [what, value] of Object.entries(secrets)) {
      for (const r of others) expect(r.body.includes(value), `${what} in ${r.method} ${r.url}`).toBe(false);
      expect(logLines.length).toBeGreaterThan(20);
      for (const line of logLines) expect(line.includes(value), `${what} in a log line`).toBe(false);
      const audit = await t.db.query<{ t: string }>('SELECT row_to_json(e)::text AS t FROM audit_events e');
      expect(audit.rows.length).toBeGreaterThan(5);
      for (const row of audit.rows) expect(row.t.includes(value), `${what} in an audit row`).toBe(false);
      const sessions = await t.db.query<{ t: string }>('SELECT data::text AS t FROM ehr_sessions');
      for (const row of sessions.rows) expect(row.t.includes(value), `${what} in a session`).toBe(false);
    }
    await context.close();
  }, 180_000);
});
