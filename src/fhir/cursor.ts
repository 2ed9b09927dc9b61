/*
 * Keyset paging cursors: the position of a listing, opaque to clients.
 * - `after`: the last key served (seq for searches and $everything, a version for _history)
 * - `upTo`: the highest key when paging began; resources created later wait for the next
 *   listing, so a listing never skips nor repeats a resource while the data changes
 * - `group`: for listings ordered by group first ($everything), the group `after` belongs to
 * - a text this server did not issue decodes to undefined (callers answer 400)
 */

export interface Cursor {
  after: number;
  upTo: number;
  group?: number;
}

export function encodeCursor(c: Cursor): string {
  const text = c.group === undefined ? `${c.after}.${c.upTo}` : `${c.group}.${c.after}.${c.upTo}`;
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Undefined when the text is not a cursor this server issued. */
export function decodeCursor(text: string): Cursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(text)) return undefined;
  const m = /^(?:(\d{1,2})\.)?(\d{1,15})\.(\d{1,15})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  if (!m) return undefined;
  const after = Number(m[2]);
  const upTo = Number(m[3]);
  if (after > upTo) return undefined;
  return m[1] === undefined ? { after, upTo } : { after, upTo, group: Number(m[1]) };
}
