/*
 * Ocean sites, on the `sites` table: a site number, its Shared Encryption Key and the chart
 * buttons (actions) it offers, each belonging to one registered client (src/clients/clients.ts).
 * - every input is validated here (zod), so the admin API, the console and tests share one rule set
 * - the SEK is stored encrypted (purpose "sek:<siteNum>") with a masked hint; it is never returned
 *   whole except to the launch that needs it (decryptSek)
 * - site_num is unique across clients; a duplicate is ConflictError, an unknown client or site
 *   NotFoundError (the client is checked by the foreign key, in the same statement)
 * - every function runs on the caller's Queryable, so a change and its audit row commit together
 */
import { z } from 'zod';
import { type Queryable, sqlState, UNIQUE_VIOLATION } from '../db/database.ts';
import { ConflictError, NotFoundError, parseInput } from '../http/errors.ts';
import type { SecretBox } from '../keys/secret-box.ts';

/** What the store needs: where to run its SQL (the database or an open transaction) and the secret box. */
export interface SiteStore {
  db: Queryable;
  box: SecretBox;
}

const FOREIGN_KEY_VIOLATION = '23503';
const iso = (d: Date | string) => new Date(d).toISOString();

const siteNumSchema = z
  .string({ message: 'site_num must be a string' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { message: 'site_num must be 1–64 letters, digits, "_" or "-"' });

const actionSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, {
  message: 'action must be 1–64 letters, digits, "_", "." or "-"',
});

export const siteActionInput = z.union([
  actionSchema.transform((action) => ({ action, label: action })),
  z.strictObject({
    action: actionSchema,
    label: z.string().trim().min(1, { message: 'label is required' }).max(100),
  }),
]);
export type SiteAction = { action: string; label: string };

/** Buttons a new site gets when the administrator names none (actions from Ocean's material). */
export const DEFAULT_SITE_ACTIONS: SiteAction[] = [
  { action: 'viewMap', label: 'Ocean Health Map' },
  { action: 'dashboard', label: 'Ocean dashboard' },
  { action: 'referDirect', label: 'New eReferral' },
];

export const addSiteInput = z.strictObject({
  siteNum: siteNumSchema,
  sharedEncryptionKey: z
    .string({ message: 'shared_encryption_key must be a string' })
    .min(1, { message: 'shared_encryption_key is required' })
    .max(4096)
    .refine((v) => v.trim().length > 0, { message: 'shared_encryption_key must not be blank' }),
  actions: z
    .array(siteActionInput)
    .max(50)
    .refine((a) => new Set(a.map((x) => x.action)).size === a.length, { message: 'actions must be unique' })
    .optional(),
});
export type AddSiteInput = z.input<typeof addSiteInput>;

export interface SiteRecord {
  siteNum: string;
  clientId: string;
  /** A few characters of the SEK for recognition; never the SEK. */
  sekHint: string;
  actions: SiteAction[];
  createdAt: string;
  updatedAt: string;
}

export interface SealedSite extends SiteRecord {
  /** SecretBox-sealed SEK; open it with decryptSek(box, siteNum, sekEncrypted). */
  sekEncrypted: string;
}

interface SiteRow {
  site_num: string;
  client_id: string;
  sek_encrypted: string;
  sek_hint: string;
  actions: SiteAction[];
  created_at: Date | string;
  updated_at: Date | string;
}

/** The SecretBox purpose of a site's SEK: a SEK sealed for one site cannot be opened as another's. */
export const sekPurpose = (siteNum: string) => `sek:${siteNum}`;

/** Masked hint: the last characters only, and none for short keys. */
export function maskSek(sek: string): string {
  return sek.length >= 12 ? `••••••${sek.slice(-4)}` : '••••••';
}

function toSite(row: SiteRow): SiteRecord {
  return {
    siteNum: row.site_num,
    clientId: row.client_id,
    sekHint: row.sek_hint,
    actions: row.actions,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

export async function addSite(store: SiteStore, clientId: string, input: unknown): Promise<SiteRecord> {
  const v = parseInput(addSiteInput, input);
  try {
    const { rows } = await store.db.query<SiteRow>(
      `INSERT INTO sites (site_num, client_id, sek_encrypted, sek_hint, actions)
       VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [
        v.siteNum,
        clientId,
        store.box.encrypt(v.sharedEncryptionKey, sekPurpose(v.siteNum)),
        maskSek(v.sharedEncryptionKey),
        JSON.stringify(v.actions ?? DEFAULT_SITE_ACTIONS),
      ],
    );
    return toSite(rows[0]!);
  } catch (err) {
    if (sqlState(err) === UNIQUE_VIOLATION)
      throw new ConflictError(`site ${v.siteNum} is already registered`);
    if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw new NotFoundError('no such client');
    throw err;
  }
}

/** One site with its sealed SEK, whatever client it belongs to. */
export async function getSite(store: Pick<SiteStore, 'db'>, siteNum: string): Promise<SealedSite> {
  const { rows } = await store.db.query<SiteRow>('SELECT * FROM sites WHERE site_num = $1', [
    String(siteNum),
  ]);
  const row = rows[0];
  if (!row) throw new NotFoundError('no such site');
  return { ...toSite(row), sekEncrypted: row.sek_encrypted };
}

/** Which of these site numbers are not registered (an EHR system's allowed sites are checked so). */
export async function unknownSites(q: Queryable, siteNums: string[]): Promise<string[]> {
  if (siteNums.length === 0) return [];
  const { rows } = await q.query<{ site_num: string }>(
    'SELECT site_num FROM sites WHERE site_num = ANY($1)',
    [siteNums],
  );
  const known = new Set(rows.map((r) => r.site_num));
  return [...new Set(siteNums)].filter((s) => !known.has(s));
}

export async function listSites(store: Pick<SiteStore, 'db'>, clientId: string): Promise<SiteRecord[]> {
  const { rows } = await store.db.query<SiteRow>(
    'SELECT * FROM sites WHERE client_id = $1 ORDER BY site_num',
    [clientId],
  );
  return rows.map(toSite);
}

/**
 * Replaces a site's chart buttons (actions + labels) and/or its SEK, in one statement; a new SEK
 * is sealed like addSite seals it, with a fresh masked hint. The site must belong to the client.
 */
export async function updateSite(
  store: SiteStore,
  clientId: string,
  siteNum: string,
  change: { actions?: SiteAction[]; sharedEncryptionKey?: string },
): Promise<SiteRecord> {
  const sek = change.sharedEncryptionKey;
  const { rows } = await store.db.query<SiteRow>(
    `UPDATE sites
        SET actions = COALESCE($3::jsonb, actions),
            sek_encrypted = COALESCE($4, sek_encrypted),
            sek_hint = COALESCE($5, sek_hint),
            updated_at = now()
      WHERE client_id = $1 AND site_num = $2
      RETURNING *`,
    [
      clientId,
      siteNum,
      change.actions ? JSON.stringify(change.actions) : null,
      sek !== undefined ? store.box.encrypt(sek, sekPurpose(siteNum)) : null,
      sek !== undefined ? maskSek(sek) : null,
    ],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError('no such site for this client');
  return toSite(row);
}

export async function deleteSite(
  store: Pick<SiteStore, 'db'>,
  clientId: string,
  siteNum: string,
): Promise<void> {
  const r = await store.db.query('DELETE FROM sites WHERE client_id = $1 AND site_num = $2', [
    clientId,
    siteNum,
  ]);
  if (r.rowCount === 0) throw new NotFoundError('no such site for this client');
}

/** Opens a SEK sealed for siteNum (a site row's or a launch context's copy). */
export function decryptSek(store: Pick<SiteStore, 'box'>, siteNum: string, sekEncrypted: string): string {
  return store.box.decryptText(sekEncrypted, sekPurpose(siteNum));
}

/**
 * SQL selecting (client_id, site_num, sek_encrypted) of the site that offers an action — none when
 * the site is unknown or does not offer it — for the launch's one statement.
 */
export const siteOfferingSql = (siteNumExpr: string, actionExpr: string): string =>
  `SELECT client_id, site_num, sek_encrypted FROM sites
    WHERE site_num = ${siteNumExpr} AND actions @> jsonb_build_array(jsonb_build_object('action', ${actionExpr}))`;
