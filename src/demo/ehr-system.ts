/*
 * The demo EHR system: the back end of "some other EHR" that asks for launches through the EHR
 * launch API (CONTRACT §3.5), so that `npx tsx examples/ehr-backend.ts` works after `npm start`.
 * - its client_id is fixed and its public key is this file's; the private key is published in
 *   examples/demo-ehr-system.private-jwk.json — a demo key, known to everyone: demo data never
 *   loads in production, and this system may launch the demo site only
 */
import type { Queryable } from '../db/database.ts';
import type { EhrSystems } from '../ehr-api/ehr-systems.ts';

export const DEMO_EHR_SYSTEM_ID = 'ehr-system-demo';

/** The public half of examples/demo-ehr-system.private-jwk.json. */
export const DEMO_EHR_SYSTEM_KEY = {
  kty: 'EC',
  crv: 'P-384',
  x: 'nyBY7DDKFhDzMGqGLYbbUcffd60jMpjX19jAjvf2ntQEtPe_pNXo0d0zTgJ_tNdF',
  y: 'tUmXNFZ4F_TaPJvrT4QvJyG5D4Wp0BkZRSxSruPAd987o4mFyn2IVGKM7l85QLRx',
  kid: 'demo-ehr-2026',
  alg: 'ES384',
  use: 'sig',
};

export function registerDemoEhrSystem(systems: EhrSystems, tx: Queryable, siteNum: string) {
  return systems.create(
    tx,
    {
      name: 'Demo EHR back end (examples/ehr-backend.ts)',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [DEMO_EHR_SYSTEM_KEY] },
      sites: [siteNum],
    },
    { clientId: DEMO_EHR_SYSTEM_ID },
  );
}
