/*
 * The allowlist packet Ocean asks of each launching server (CONTRACT §2 item 10), for one registered client:
 * (1) server URL = iss = FHIR base, (2) client_id, (3) authorization endpoint, (4) token endpoint,
 * (5) token issuer URL (the id_token's iss), (6) URL and current body of smart-configuration,
 * (7) URL and current body of openid-configuration.
 * - endpoints are read from the discovery documents as served now, so the packet cannot disagree with them
 * - asText() lays the values out for an e-mail to Ocean
 */
import type Provider from 'oidc-provider';
import { getClient } from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import { discoveryDocuments } from '../oidc/discovery-documents.ts';

export interface AllowlistPacket {
  client_name: string;
  server_url: string;
  client_id: string;
  authorization_endpoint: string;
  token_endpoint: string;
  token_issuer_url: string;
  smart_configuration: { url: string; body: Record<string, unknown> };
  openid_configuration: { url: string; body: Record<string, unknown> };
  generated_at: string;
}

const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || v.length === 0) throw new Error(`the discovery document has no ${what}`);
  return v;
};

export async function allowlistPacket(
  ctx: AppContext,
  provider: Provider,
  clientId: string,
): Promise<AllowlistPacket> {
  const client = await getClient(ctx, clientId);
  const docs = await discoveryDocuments(ctx, provider);
  const oidc = docs.openidConfiguration.body;
  return {
    client_name: client.name,
    server_url: ctx.config.fhirBaseUrl,
    client_id: client.client_id,
    authorization_endpoint: str(oidc.authorization_endpoint, 'authorization_endpoint'),
    token_endpoint: str(oidc.token_endpoint, 'token_endpoint'),
    token_issuer_url: str(oidc.issuer, 'issuer'),
    smart_configuration: docs.smartConfiguration,
    openid_configuration: docs.openidConfiguration,
    generated_at: new Date().toISOString(),
  };
}

/** The packet as plain text, ready to paste into an e-mail to Ocean. */
export function allowlistText(p: AllowlistPacket): string {
  const json = (v: unknown) => JSON.stringify(v, null, 2);
  return [
    `SMART on FHIR launch server — values for Ocean's allowlist (client "${p.client_name}")`,
    '',
    `1. Server URL (iss / FHIR base): ${p.server_url}`,
    `2. Client ID: ${p.client_id}`,
    `3. Authorization endpoint: ${p.authorization_endpoint}`,
    `4. Token endpoint: ${p.token_endpoint}`,
    `5. Token issuer URL (id_token iss): ${p.token_issuer_url}`,
    `6. SMART configuration: ${p.smart_configuration.url}`,
    json(p.smart_configuration.body),
    '',
    `7. OpenID configuration: ${p.openid_configuration.url}`,
    json(p.openid_configuration.body),
    '',
    `(generated ${p.generated_at})`,
    '',
  ].join('\n');
}
