/*
 * What a hop of the launch reads, counted (issue 13: fewer round trips per launch). Each hop
 * reads what it relies on once — never the same row twice within one request:
 * - the consent answer reads its interaction (and the provider session it belongs to) once: the
 *   result is saved on the interaction the request loaded, not on a second copy of it
 * - the authorization of an EHR system's launch reads the launch row once: the `launch` check
 *   and the single sign-on grant share what the request read
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countingStatements,
  createTestDatabase,
  type Statement,
  type TestDatabase,
} from '../helpers/database.ts';
import {
  authorize,
  CookieJar,
  createTestClient,
  createTestLaunch,
  createTestSite,
  createTestUser,
  pkce,
  signIn,
  type TestUser,
} from '../helpers/oidc.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let t: TestDatabase;
let s: TestServer;
let statements: Statement[];
let user: TestUser;

beforeAll(async () => {
  t = await createTestDatabase();
  const counting = countingStatements(t.db);
  statements = counting.statements;
  s = await startTestServer(counting.db);
  user = await createTestUser(s.ctx);
});
afterAll(async () => {
  await s?.stop();
  await t?.drop();
});

/** The oidc-provider rows of one model a list of statements looked up. */
const lookups = (made: Statement[], model: string) =>
  made.filter((q) => /^SELECT\b[\s\S]*FROM oidc_models/.test(q.sql) && q.params[0] === model);

const authorization = (clientId: string, redirectUri: string, launch: string) => {
  const p = pkce();
  return {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'openid fhirUser launch patient/*.read',
    state: randomBytes(6).toString('hex'),
    aud: s.ctx.config.fhirBaseUrl,
    launch,
    nonce: randomBytes(6).toString('hex'),
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
  };
};

describe('round trips per hop', () => {
  it('the consent answer reads its interaction and its session once, and still leads to a code', async () => {
    const shy = await createTestClient(s.ctx, { pre_authorized: false });
    const siteNum = (await createTestSite(s.ctx, shy.clientId)).siteNum;
    const jar = new CookieJar((await signIn(s.ctx, user.id)).cookie);
    /** Up to the consent page, then Allow: the answer's response and the code it leads to. */
    const consentAndAllow = async (counted: boolean) => {
      const { launchId } = await createTestLaunch(s.ctx, {
        userId: user.id,
        patientId: 'pat-rt',
        siteNum,
        action: 'viewMap',
      });
      const page = await authorize(
        s.url,
        authorization(shy.clientId, shy.client.redirect_uris[0]!, launchId),
        jar,
      );
      expect(page.stoppedAt?.status).toBe(200);
      const action = new URL(/action="([^"]+)"/.exec(page.stoppedAt!.body)![1]!, s.url);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page.stoppedAt!.body)![1]!;
      statements.length = 0;
      const answer = await fetch(action, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: jar.header(action.pathname), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, decision: 'allow' }).toString(),
      });
      const made = [...statements];
      expect(answer.status).toBe(303);
      jar.store(answer.headers.getSetCookie(), action.pathname);
      const resume = new URL(answer.headers.get('location')!, action);
      const back = await fetch(resume, {
        redirect: 'manual',
        headers: { cookie: jar.header(resume.pathname) },
      });
      jar.store(back.headers.getSetCookie(), resume.pathname);
      const redirect = new URL(back.headers.get('location')!, resume);
      expect(redirect.origin + redirect.pathname).toBe(shy.client.redirect_uris[0]);
      expect(redirect.searchParams.get('code')).toBeTruthy();
      return counted ? made : [];
    };
    // the first launch leaves a provider session; the second's interaction belongs to it
    await consentAndAllow(false);
    const made = await consentAndAllow(true);
    expect(lookups(made, 'Interaction')).toHaveLength(1);
    expect(lookups(made, 'Session')).toHaveLength(1);
  });

  it("an EHR system's launch is read once by the authorization that signs its user in", async () => {
    const client = await createTestClient(s.ctx);
    const siteNum = (await createTestSite(s.ctx, client.clientId)).siteNum;
    const jar = new CookieJar(); // a browser with no EHR session of ours
    const apiLaunch = async () =>
      (
        await createTestLaunch(s.ctx, {
          userId: user.id,
          patientId: 'pat-rt-api',
          siteNum,
          action: 'viewMap',
          requestedBy: 'ehr-system:round-trips',
        })
      ).launchId;
    // the first launch signs the browser in with oidc-provider (through the interaction) …
    const first = await authorize(
      s.url,
      authorization(client.clientId, client.client.redirect_uris[0]!, await apiLaunch()),
      jar,
    );
    expect(first.code).toBeTruthy();
    // … the second gets its grant at the authorization endpoint itself
    const launchId = await apiLaunch();
    statements.length = 0;
    const second = await authorize(
      s.url,
      authorization(client.clientId, client.client.redirect_uris[0]!, launchId),
      jar,
    );
    expect(second.code).toBeTruthy();
    expect(second.hops).toHaveLength(1);
    const launchReads = statements.filter((q) => /^SELECT\b[\s\S]*FROM launch_contexts/.test(q.sql));
    expect(launchReads).toHaveLength(1);
  });
});
