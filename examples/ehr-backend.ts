/*
 * An EHR's back end asking for an Ocean launch, end to end (README → "Plugging in your EHR").
 *
 *   npx tsx examples/ehr-backend.ts [server URL]        (default http://localhost:3000)
 *
 * 1. reads the EHR system's private key (a JWK) and client_id — by default the demo EHR system
 *    that `npm start` registers on a fresh database (its key is public: a demo key)
 * 2. finds the token endpoint in the server's SMART configuration
 * 3. signs a client assertion (RFC 7523, SMART Backend Services) and gets an access token with
 *    grant_type=client_credentials and scope=ehr-launch
 * 4. asks for a launch: POST /ehr-api/launches with the clinician, the patient and their chart
 * 5. prints launch_url: the URL the EHR's "Open Ocean" button opens in the clinician's browser
 *
 * Settings (environment): EHR_CLIENT_ID, EHR_KEY_FILE (a private JWK), EHR_SITE, EHR_ACTION,
 * EHR_PATIENT_ID (launch for a stored patient instead of sending one).
 * Only `jose` beyond Node.js itself; copy it into your own back end and change what it sends.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { importJWK, type JWK, SignJWT } from 'jose';

const server = (process.argv[2] ?? 'http://localhost:3000').replace(/\/+$/, '');
const clientId = process.env.EHR_CLIENT_ID ?? 'ehr-system-demo';
const keyFile = process.env.EHR_KEY_FILE ?? new URL('./demo-ehr-system.private-jwk.json', import.meta.url);
const site = process.env.EHR_SITE ?? '1234';
const action = process.env.EHR_ACTION ?? 'viewMap';

async function main(): Promise<void> {
  // 1. The EHR system's signing key: the private half stays with the EHR, the public half was
  //    registered with the server (POST /admin/api/ehr-systems, as jwks or at a jwks_uri).
  const jwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
  const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES384' : 'RS384');
  const privateKey = await importJWK(jwk, alg);

  // 2. Where to get tokens.
  const smart = (await getJson(`${server}/fhir/.well-known/smart-configuration`)) as { token_endpoint: string };

  // 3. SMART Backend Services: a short-lived assertion, used once (a fresh jti every time).
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(smart.token_endpoint)
    .setExpirationTime('5m')
    .setJti(randomUUID())
    .sign(privateKey);
  const tokenResponse = await fetch(smart.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope: 'ehr-launch',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }),
  });
  const token = (await answer(tokenResponse, 'token')) as { access_token: string; expires_in: number };
  // A real back end keeps this token until shortly before expires_in and reuses it for every launch.

  // 4. The launch: who is signed in to the EHR, and which chart is open.
  const patient = process.env.EHR_PATIENT_ID
    ? { id: process.env.EHR_PATIENT_ID }
    : {
        resource: {
          resourceType: 'Patient',
          id: 'ehr-example-1',
          name: [{ use: 'official', family: 'Gagnon', given: ['Sylvie'] }],
          gender: 'female',
          birthDate: '1958-09-30',
          identifier: [
            {
              system: 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn',
              value: '9876543225',
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'JHN' }] },
            },
          ],
        },
      };
  const resources = process.env.EHR_PATIENT_ID
    ? undefined
    : [
        {
          resourceType: 'AllergyIntolerance',
          id: 'ehr-example-1-allergy-1',
          patient: { reference: 'Patient/ehr-example-1' },
          code: { text: 'Penicillin' },
        },
        {
          resourceType: 'Condition',
          id: 'ehr-example-1-condition-1',
          subject: { reference: 'Patient/ehr-example-1' },
          code: { text: 'Hypertension' },
        },
      ];
  const launchResponse = await fetch(`${server}/ehr-api/launches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      site,
      action,
      user: {
        id: 'example-user-1',
        given_name: 'Rosa',
        family_name: 'Martins',
        email: 'rosa.martins@clinic.example.org',
      },
      patient,
      ...(resources ? { resources } : {}),
    }),
  });
  const launch = (await answer(launchResponse, 'launch')) as { launch_url: string; expires_in: number };

  // 5. The EHR's button opens this in the clinician's browser, within expires_in seconds.
  console.log(`token     ${token.expires_in} s, scope ehr-launch`);
  console.log(`launch    valid ${launch.expires_in} s, once`);
  console.log(`launch_url ${launch.launch_url}`);
}

async function getJson(url: string): Promise<unknown> {
  return answer(await fetch(url), url);
}

async function answer(res: Response, what: string): Promise<unknown> {
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${what}: ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
  return body;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
