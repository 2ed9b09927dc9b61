/*
 * End to end, in a real browser (Debian's /usr/bin/chromium via playwright-core; never a
 * downloaded browser): a clinician signs in, searches a patient, opens the chart and presses an
 * Ocean button; a small stand-in for Ocean (a local HTTP server driving openid-client, a real
 * OIDC relying party) completes the SMART EHR launch — discovery, authorize, token, strict
 * id_token check against the JWKS — and reads the patient. Ocean registered as a confidential
 * client with offline_access launches twice: the second launch goes /launch → /fhir/auth → Ocean
 * with no interaction in between. Screenshots of every screen are written to test-artifacts/e2e/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.ts';
import { DEMO_USERS } from '../../src/demo/index.ts';
import { addSite } from '../../src/sites/sites.ts';
import { findByUsername } from '../../src/users/users.ts';
import { CHROMIUM, haveChromium, launchChromium } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { OCEAN_SCOPE, OceanStandIn } from '../helpers/ocean-stand-in.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');
const SITE = '5150';
const SEK = 'Ocean-e2e SEK: ünïcødé + symbols/=?&';

/** The trimmed text of the first element a locator finds, once it is there. */
async function text(locator: ReturnType<Page['locator']>): Promise<string> {
  await locator.first().waitFor({ state: 'attached', timeout: 15_000 });
  return ((await locator.first().textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

// Skipped, with this reason in its name, only where Debian's chromium is missing
// (apt-get install -y chromium; .ci/run installs it).
describe.skipIf(!haveChromium)(`Ocean launch in a real browser (${CHROMIUM})`, () => {
  let t: TestDatabase;
  let s: TestServer;
  let ocean: OceanStandIn;
  let browser: Browser;
  const seenUrls: string[] = [];

  const shot = async (page: Page, name: string) => {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await createTestDatabase();
    s = await startTestServer(t.db, { DEMO_DATA: 'true' });
    ocean = new OceanStandIn();
    await ocean.listen();
    const { client } = await createClient(s.ctx, {
      name: 'Ocean stand-in',
      redirect_uris: [ocean.redirectUri],
      launch_url: ocean.launchUrl,
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
      require_pkce: true,
    });
    ocean.clientId = client.client_id;
    await addSite(s.ctx, client.client_id, {
      siteNum: SITE,
      sharedEncryptionKey: SEK,
      actions: [
        { action: 'viewMap', label: 'Health Map' },
        { action: 'referDirect', label: 'Refer' },
      ],
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await ocean?.close();
    await s?.stop();
    await t?.drop();
  });

  it('signs in, finds the patient, opens the chart, and launches Ocean with SSO, patient and SEK', async () => {
    const clinician = DEMO_USERS[0]!;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.on('request', (r) => seenUrls.push(r.url()));
    const page = await context.newPage();

    // 1. Sign-in page.
    await page.goto(`${s.url}/`);
    await expect.poll(() => new URL(page.url()).pathname).toBe('/login');
    await shot(page, '01-sign-in');
    await page.fill('#username', clinician.username);
    await page.fill('#password', clinician.password);
    await Promise.all([page.waitForURL(`${s.url}/patients`), page.click('button[type=submit]')]);

    // 2. Patient list.
    expect(await text(page.locator('h1'))).toBe('Patients');
    expect(await page.locator('.patient-link').count()).toBe(20);
    await shot(page, '02-patient-list');

    // 3. Search.
    await page.fill('#q', 'levesque');
    await Promise.all([
      page.waitForURL(/\/patients\?q=levesque/),
      page.click('form[role=search] button[type=submit]'),
    ]);
    expect(await page.locator('.patient-link').count()).toBe(1);
    await shot(page, '03-search');

    // 4. Chart.
    await Promise.all([page.waitForURL(/\/patients\/[^/?]+$/), page.click('.patient-link')]);
    const patientId = new URL(page.url()).pathname.split('/').at(-1)!;
    expect(await text(page.locator('h1'))).toContain('Lévesque');
    const button = page.locator(`a.button-ocean[data-site="${SITE}"][data-action="viewMap"]`);
    expect(await text(button)).toBe('Ocean: Health Map');
    expect(await button.getAttribute('target')).toBe('_blank');
    await shot(page, '04-chart');

    const requestsBeforeLaunch = seenUrls.length;
    // 5. Ocean button → new tab → launch → authorize (SSO) → callback → token → Patient read.
    const [oceanTab] = await Promise.all([context.waitForEvent('page'), button.click()]);
    await oceanTab.waitForURL(`${ocean.redirectUri}?**`);
    expect(await text(oceanTab.locator('#result'))).toContain('Lévesque');
    await shot(oceanTab, '05-ocean-stand-in');

    expect(ocean.errors).toEqual([]);
    expect(ocean.results).toHaveLength(1);
    const r = ocean.results[0]!;
    // The launch Ocean received.
    expect(r.launchParams).toMatchObject({ siteNum: SITE, action: 'viewMap', iss: s.ctx.config.fhirBaseUrl });
    expect(r.launchParams.launch).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.smartConfiguration.authorization_endpoint).toBeTruthy();
    // The token response: patient in context and the site's SEK, Base64 of its UTF-8 bytes.
    expect(r.tokenResponse.patient).toBe(patientId);
    expect(r.tokenResponse.oceanSharedEncryptionKey).toBe(Buffer.from(SEK, 'utf8').toString('base64'));
    expect(r.tokenResponse.token_type).toMatch(/^bearer$/i);
    // The id_token: the EHR user's stable id, their name, signed with a published key.
    const user = (await findByUsername(s.ctx, clinician.username))!;
    expect(r.idTokenAlg).toBe('RS256');
    expect(r.idTokenClaims.sub).toBe(user.id);
    expect(r.idTokenClaims.iss).toBe(s.ctx.config.fhirBaseUrl);
    expect(r.idTokenClaims.family_name).toBe(clinician.family_name);
    expect(String(r.idTokenClaims.fhirUser)).toContain(`Practitioner/${user.practitionerId}`);
    // The patient read with the access token.
    expect(r.patient.id).toBe(patientId);
    expect(r.patient.name?.[0]?.family).toBe('Lévesque');

    // No second sign-in: from the Ocean button on, the browser never went back to /login,
    // yet it did pass through our authorize endpoint (the EHR session signed it in).
    const launchRequests = seenUrls.slice(requestsBeforeLaunch).filter((u) => u.startsWith(s.url));
    expect(launchRequests.some((u) => new URL(u).pathname.startsWith('/launch'))).toBe(true);
    expect(launchRequests.some((u) => new URL(u).pathname.startsWith('/fhir/auth'))).toBe(true);
    expect(launchRequests.filter((u) => new URL(u).pathname === '/login')).toEqual([]);
    await context.close();
  });

  it('launches Ocean as a confidential client with offline_access twice: the second straight from /fhir/auth', async () => {
    // Ocean as most sites register it: confidential, ES256 id_tokens, a refresh token.
    const confidential = new OceanStandIn(`${OCEAN_SCOPE} offline_access`);
    await confidential.listen();
    try {
      const { client, client_secret } = await createClient(s.ctx, {
        name: 'Ocean stand-in (confidential)',
        redirect_uris: [confidential.redirectUri],
        launch_url: confidential.launchUrl,
        token_endpoint_auth_method: 'client_secret_post',
        id_token_signed_response_alg: 'ES256',
      });
      confidential.clientId = client.client_id;
      confidential.clientSecret = client_secret!;
      const site = '5151';
      await addSite(s.ctx, client.client_id, {
        siteNum: site,
        sharedEncryptionKey: SEK,
        actions: [{ action: 'viewMap', label: 'Health Map' }],
      });
      const context = await browser.newContext();
      const seen: string[] = [];
      context.on('request', (r) => seen.push(r.url()));
      const page = await context.newPage();
      await page.goto(`${s.url}/login`);
      await page.fill('#username', DEMO_USERS[2]!.username);
      await page.fill('#password', DEMO_USERS[2]!.password);
      await Promise.all([page.waitForURL(`${s.url}/patients`), page.click('button[type=submit]')]);
      await Promise.all([page.waitForURL(/\/patients\/[^/?]+$/), page.click('.patient-link')]);
      const button = page.locator(`a.button-ocean[data-site="${site}"][data-action="viewMap"]`);
      const ours = (from: number) =>
        seen
          .slice(from)
          .filter((u) => u.startsWith(s.url))
          .map((u) => new URL(u).pathname);
      const launchOnce = async () => {
        const from = seen.length;
        const [tab] = await Promise.all([context.waitForEvent('page'), button.click()]);
        await tab.waitForURL(`${confidential.redirectUri}?**`);
        expect(await text(tab.locator('#result'))).toContain('Launched for');
        await tab.close();
        return ours(from);
      };
      const first = await launchOnce();
      expect(first.some((p) => p.startsWith('/interaction/'))).toBe(true);
      const second = await launchOnce();
      expect(second).toEqual(['/launch', '/fhir/auth']);
      expect(confidential.errors).toEqual([]);
      expect(confidential.results).toHaveLength(2);
      for (const r of confidential.results) {
        expect(r.idTokenAlg).toBe('ES256');
        expect(r.tokenResponse.refresh_token).toBeTruthy();
        expect(String(r.tokenResponse.scope).split(' ')).toContain('offline_access');
        expect(r.tokenResponse.oceanSharedEncryptionKey).toBe(Buffer.from(SEK, 'utf8').toString('base64'));
      }
      await context.close();
    } finally {
      await confidential.close();
    }
  });

  it('asks a browser that is not signed in to sign in once, then to confirm the launch it did not click', async () => {
    const clinician = DEMO_USERS[1]!;
    const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    const page = await context.newPage();
    const patient = (
      await t.db.query<{ id: string }>(
        "SELECT id FROM fhir_resources WHERE resource_type = 'Patient' LIMIT 1",
      )
    ).rows[0]!;
    const before = ocean.results.length;
    await page.goto(`${s.url}/launch?patient=${patient.id}&site=${SITE}&action=referDirect`);
    await expect.poll(() => new URL(page.url()).pathname).toBe('/login');
    await shot(page, '06-launch-needs-sign-in');
    await page.fill('#username', clinician.username);
    await page.fill('#password', clinician.password);
    // A typed or e-mailed link is not a click on a chart: the patient and the action are shown
    // first, and nothing is launched until the clinician confirms (one click).
    await Promise.all([page.waitForURL(/\/launch\?/), page.click('button[type=submit]')]);
    expect(await text(page.locator('h1'))).toBe('Open Ocean for this patient?');
    expect(await text(page.locator('dl.facts'))).toContain('Refer');
    expect(ocean.results.length).toBe(before);
    await shot(page, '06b-launch-confirmation');
    await Promise.all([page.waitForURL(`${ocean.redirectUri}?**`), page.click('button.button-ocean')]);
    expect(await text(page.locator('#result'))).toContain('action referDirect');
    expect(ocean.errors).toEqual([]);
    expect(ocean.results.length).toBe(before + 1);
    expect(ocean.results.at(-1)!.tokenResponse.patient).toBe(patient.id);
    await context.close();
  });

  it('never launches for a page on another site that navigates a signed-in clinician to /launch', async () => {
    const clinician = DEMO_USERS[0]!;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${s.url}/login`);
    await page.fill('#username', clinician.username);
    await page.fill('#password', clinician.password);
    await Promise.all([page.waitForURL(`${s.url}/patients`), page.click('button[type=submit]')]);
    const patient = (
      await t.db.query<{ id: string }>(
        "SELECT id FROM fhir_resources WHERE resource_type = 'Patient' LIMIT 1",
      )
    ).rows[0]!;
    const launches = async () =>
      Number((await t.db.query<{ n: unknown }>('SELECT count(*) AS n FROM launch_contexts')).rows[0]!.n);
    const before = await launches();
    // A page on another site (served by the browser itself: no network) that the clinician opens
    // links to our /launch, and also sends them through sign-in's returnTo.
    const launch = `/launch?patient=${patient.id}&site=${SITE}&action=referDirect`;
    await page.route('http://attacker.example/**', (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<a id="go" href="${s.url}${launch}">win a prize</a>
               <a id="via-login" href="${s.url}/login?returnTo=${encodeURIComponent(launch)}">prize 2</a>`,
      }),
    );
    for (const link of ['#go', '#via-login']) {
      await page.goto('http://attacker.example/');
      await Promise.all([page.waitForURL(/\/launch\?/), page.click(link)]);
      expect(await text(page.locator('h1'))).toBe('Open Ocean for this patient?');
      expect(await launches()).toBe(before);
    }
    await context.close();
  });

  it('shows a page a person understands for a launch that cannot happen', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${s.url}/login`);
    await page.fill('#username', DEMO_USERS[0]!.username);
    await page.fill('#password', DEMO_USERS[0]!.password);
    await Promise.all([page.waitForURL(`${s.url}/patients`), page.click('button[type=submit]')]);
    const res = await page.goto(`${s.url}/launch?patient=no-such-patient&site=${SITE}&action=viewMap`);
    expect(res?.status()).toBe(404);
    expect(await text(page.locator('h1'))).toBe('Not found');
    await shot(page, '07-launch-refused');
    // A tablet-width chart, for the record.
    await page.setViewportSize({ width: 820, height: 1180 });
    await page.goto(`${s.url}/patients?q=tremblay`);
    await shot(page, '08-tablet-list');
    await context.close();
  });
});
