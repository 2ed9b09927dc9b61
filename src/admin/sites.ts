/*
 * Changing an existing Ocean site (the client store creates and deletes them).
 * - replaces the chart buttons (actions + labels) and/or the SEK, in one statement
 * - a new SEK is sealed exactly as the store seals it (purpose "sek:<siteNum>") with a fresh masked hint
 * - the site must belong to the named client: 404 otherwise
 */
import type { AppContext } from '../context.ts';
import { NotFoundError } from '../http/errors.ts';
import { maskSek, type SiteAction, type SiteRecord } from '../oidc/clients-store.ts';

interface SiteRow {
  site_num: string;
  client_id: string;
  sek_hint: string;
  actions: SiteAction[];
  created_at: Date | string;
  updated_at: Date | string;
}

export async function replaceSiteActions(
  ctx: AppContext,
  clientId: string,
  siteNum: string,
  change: { actions?: SiteAction[]; sharedEncryptionKey?: string },
): Promise<SiteRecord> {
  const sek = change.sharedEncryptionKey;
  const { rows } = await ctx.db.query<SiteRow>(
    `UPDATE sites
        SET actions = COALESCE($3::jsonb, actions),
            sek_encrypted = COALESCE($4, sek_encrypted),
            sek_hint = COALESCE($5, sek_hint),
            updated_at = now()
      WHERE client_id = $1 AND site_num = $2
      RETURNING site_num, client_id, sek_hint, actions, created_at, updated_at`,
    [
      clientId,
      siteNum,
      change.actions ? JSON.stringify(change.actions) : null,
      sek !== undefined ? ctx.box.encrypt(sek, `sek:${siteNum}`) : null,
      sek !== undefined ? maskSek(sek) : null,
    ],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError('no such site for this client');
  return {
    siteNum: row.site_num,
    clientId: row.client_id,
    sekHint: row.sek_hint,
    actions: row.actions,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}
