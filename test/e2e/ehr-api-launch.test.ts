/*
 * The EHR launch API end to end in a real browser (Debian's chromium via playwright-core): an
 * EHR's back end (jose, SMART Backend Services) asks for a launch with its user, the patient and
 * the chart; a browser that never signed in to us opens launch_url; Ocean's stand-in (openid-client,
 * strict id_token validation) gets a code, the token with patient and SEK, and reads the Patient
 * and $everything that the EHR sent with the launch.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/clients/clients.ts';
import { addSite } from '../../src/sites/sites.ts';
import { CHROMIUM, haveChromium, launchChromium } from '../helpers/browser.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { askLaunch, ehrKey, ehrToken, registerEhrSystem } from '../helpers/ehr-backend.ts';
import { OceanStandIn } from '../helpers/ocean-stand-in.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'e2e');
const SITE = '7321';
const SEK = 'EHR-API e2e SEK ✓';

describe.skipIf(!haveChromium)(
  `a launch asked for by an EHR's back end, in a real browser (${CHROMIUM})`,
  () => {
    let t: TestDatabase;
    let s: TestServer;
    let ocean: OceanStandIn;
    let browser: Browser;

    beforeAll(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      t = await createTestDatabase();
      s = await startTestServer(t.db);
      ocean = new OceanStandIn();
      await ocean.listen();
      const { client } = await createClient(s.ctx, {
        name: 'Ocean stand-in',
        redirect_uris: [ocean.redirectUri],
        launch_url: ocean.launchUrl,
        token_endpoint_auth_method: 'none',
      });
      ocean.clientId = client.client_id;
      await addSite(s.ctx, client.client_id, {
        siteNum: SITE,
        sharedEncryptionKey: SEK,
        actions: [{ action: 'referDirect', label: 'Refer' }],
      });
      browser = await launchChromium();
    });

    afterAll(async () => {
      await browser?.close();
      await ocean?.close();
      await s?.stop();
      await t?.drop();
    });

    it('opens Ocean with single sign-on, the patient, its chart and the SEK, with no page of ours on the way', async () => {
      const key = await ehrKey('ES384');
      const reg = await registerEhrSystem(s.url, {
        name: 'Clinic EMR',
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [key.publicJwk] },
      });
      const token = await ehrToken(s.url, String(reg.body.client_id), key);
      const chart: Resource[] = [
        {
          resourceType: 'Condition',
          id: 'emr-77-c1',
          subject: { reference: 'Patient/emr-77' },
          code: { text: 'Type 2 diabetes' },
        } as Resource,
        {
          resourceType: 'AllergyIntolerance',
          id: 'emr-77-a1',
          patient: { reference: 'Patient/emr-77' },
          code: { text: 'Sulfa drugs' },
        } as Resource,
      ];
      const asked = await askLaunch(s.url, token, {
        site: SITE,
        action: 'referDirect',
        user: {
          id: 'dr-okafor',
          given_name: 'Chidi',
          family_name: 'Okafor',
          email: 'c.okafor@clinic.example.test',
        },
        patient: {
          resource: {
            resourceType: 'Patient',
            id: 'emr-77',
            name: [{ family: 'Bélanger', given: ['Louise'] }],
            birthDate: '1950-02-03',
          },
        },
        resources: chart,
      });
      expect(asked.status).toBe(201);

      const context = await browser.newContext();
      const seen: string[] = [];
      context.on('request', (r) => seen.push(r.url()));
      const page = await context.newPage();
      await page.goto(String(asked.body.launch_url));
      await page.waitForURL(`${ocean.redirectUri}?**`);
      await page.locator('#result').waitFor();
      expect(await page.locator('#result').textContent()).toContain('Bélanger');
      await page.screenshot({ path: join(ARTIFACTS, 'ehr-api-launch.png'), fullPage: true });
      await context.close();

      expect(ocean.errors).toEqual([]);
      const r = ocean.results.at(-1)!;
      expect(r.tokenResponse.patient).toBe('emr-77');
      expect(r.tokenResponse.oceanSharedEncryptionKey).toBe(Buffer.from(SEK, 'utf8').toString('base64'));
      expect(r.idTokenClaims.given_name).toBe('Chidi');
      expect(r.idTokenClaims.family_name).toBe('Okafor');
      expect(r.idTokenClaims.email).toBe('c.okafor@clinic.example.test');
      expect(r.patient.birthDate).toBe('1950-02-03');
      const types = (r.everything.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
      expect(types).toEqual(['Patient/emr-77', 'AllergyIntolerance/emr-77-a1', 'Condition/emr-77-c1']);
      // The browser went through our authorization endpoint, never through a sign-in page.
      const ours = seen.filter((u) => u.startsWith(s.url)).map((u) => new URL(u).pathname);
      expect(ours).toContain('/fhir/auth');
      expect(ours.filter((p) => p === '/login')).toEqual([]);
    });
  },
);
