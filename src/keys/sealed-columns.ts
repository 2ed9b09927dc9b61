/*
 * Every column that holds a value sealed with ctx.box: what a SECRETS_KEY rotation re-seals and
 * what the start-up check opens.
 * - one line per column: table, key column, sealed column, and how the value's purpose (its
 *   associated data, see secret-box.ts) is made from a column of the same row
 * - a room that seals something new adds its line here; the rotation needs nothing else
 * - names are constants of this file, never input: they are the only identifiers put into SQL text
 */

export interface SealedColumn {
  table: string;
  /** Primary key column (one column), to address one row. */
  key: string;
  /** Column holding the sealed text (NULL allowed: skipped). */
  sealed: string;
  /** Column whose value makes the purpose. */
  purposeFrom: string;
  purpose(value: string): string;
  /** Rows worth checking at start (short-lived rows that expired are not). */
  live?: string;
}

export const SEALED_COLUMNS: readonly SealedColumn[] = [
  // The derivation root itself (key-ring.ts).
  {
    table: 'secrets_root',
    key: 'id',
    sealed: 'root_sealed',
    purposeFrom: 'id',
    purpose: () => 'secrets-root',
  },
  // Signing private keys (keys/signing-keys.ts).
  {
    table: 'signing_keys',
    key: 'kid',
    sealed: 'private_jwk_encrypted',
    purposeFrom: 'kid',
    purpose: (kid) => `signing-key:${kid}`,
  },
  // Ocean sites' Shared Encryption Keys.
  {
    table: 'sites',
    key: 'site_num',
    sealed: 'sek_encrypted',
    purposeFrom: 'site_num',
    purpose: (n) => `sek:${n}`,
  },
  // The copy of a site's SEK a launch context carries until its token is issued (launch/launch-contexts.ts).
  {
    table: 'launch_contexts',
    key: 'id_hash',
    sealed: 'sek_encrypted',
    purposeFrom: 'site_num',
    purpose: (n) => `sek:${n}`,
    live: 'expires_at > now()',
  },
];

export const columnName = (c: SealedColumn): string => `${c.table}.${c.sealed}`;
