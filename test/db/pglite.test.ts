import { describe, expect, it } from 'vitest';
import { createPgliteDatabase } from '../../src/db/pglite.ts';

// The embedded database starts with the page cache it is given (EMBEDDED_SHARED_BUFFERS): a
// setting that did not reach PostgreSQL would leave the 128MB default zeroed at every start.
describe('embedded PGlite database', () => {
  it('runs with the configured shared_buffers, 16MB unless told otherwise', async () => {
    for (const [given, expected] of [
      [undefined, '16MB'],
      ['8MB', '8MB'],
    ] as const) {
      const db = await createPgliteDatabase('memory://', { sharedBuffers: given });
      try {
        const { rows } = await db.query<{ shared_buffers: string }>('SHOW shared_buffers');
        expect(rows[0]?.shared_buffers).toBe(expected);
      } finally {
        await db.close();
      }
    }
  });
});
