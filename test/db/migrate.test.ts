import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { listMigrations, migrate } from '../../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../helpers/database.ts';

describe('migrations', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(async () => {
    await t.drop();
  });

  it('applies every migration once, in order, and is idempotent', async () => {
    const first = await migrate(t.db);
    expect(first).toEqual(listMigrations().map((m) => m.name));
    expect(await migrate(t.db)).toEqual([]);
    const { rows } = await t.db.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(listMigrations().map((m) => m.version));
  });

  it('reads what is recorded once when nothing is pending: no transaction, no lock', async () => {
    await migrate(t.db);
    let transactions = 0;
    const counting: Database = {
      ...t.db,
      transaction: (fn) => {
        transactions++;
        return t.db.transaction(fn);
      },
    };
    expect(await migrate(counting)).toEqual([]);
    expect(transactions).toBe(0);
    // a pending one still runs in its own transaction, under the lock
    const extra = { version: 99998, name: '99998_extra.sql', checksum: 'x', sql: 'SELECT 1' };
    expect(await migrate(counting, [...listMigrations(), extra])).toEqual(['99998_extra.sql']);
    expect(transactions).toBe(1);
    await t.db.query('DELETE FROM schema_migrations WHERE version = 99998');
  });

  it('refuses a migration whose file changed after it was applied', async () => {
    const [m] = listMigrations();
    await expect(migrate(t.db, [{ ...m!, checksum: 'changed' }])).rejects.toThrow(/was changed/);
  });

  it('rolls back a failing migration completely', async () => {
    const bad = {
      version: 99999,
      name: '99999_bad.sql',
      checksum: 'x',
      sql: 'CREATE TABLE half_done (id int); SELECT broken syntax here;',
    };
    await expect(migrate(t.db, [bad])).rejects.toThrow();
    const { rows } = await t.db.query("SELECT to_regclass('half_done') AS t");
    expect(rows[0]).toEqual({ t: null });
    const rec = await t.db.query('SELECT 1 FROM schema_migrations WHERE version = 99999');
    expect(rec.rowCount).toBe(0);
  });

  it.skipIf(!usingPostgres)('lets two instances start at once on one PostgreSQL without racing', async () => {
    const fresh = await createTestDatabase();
    try {
      const others: Database[] = [await fresh.connectAnother(), await fresh.connectAnother()];
      const results = await Promise.all([migrate(fresh.db), ...others.map((d) => migrate(d))]);
      // Each migration was applied by exactly one of them.
      expect(results.flat().sort()).toEqual(
        listMigrations()
          .map((m) => m.name)
          .sort(),
      );
    } finally {
      await fresh.drop();
    }
  });
});

describe('transactions', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.exec('CREATE TABLE tx_probe (id int PRIMARY KEY)');
  });
  afterAll(async () => {
    await t.drop();
  });

  it('commits when the work succeeds', async () => {
    await t.db.transaction(async (tx) => {
      await tx.query('INSERT INTO tx_probe VALUES (1)');
      await tx.query('INSERT INTO tx_probe VALUES (2)');
    });
    expect((await t.db.query('SELECT * FROM tx_probe')).rowCount).toBe(2);
  });

  it('leaves nothing behind when the work fails halfway', async () => {
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query('INSERT INTO tx_probe VALUES (3)');
        await tx.query('INSERT INTO tx_probe VALUES (1)'); // duplicate key
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect((await t.db.query('SELECT * FROM tx_probe WHERE id = 3')).rowCount).toBe(0);
  });

  it('passes parameters, never interpolates them', async () => {
    const evil = '1); DROP TABLE tx_probe; --';
    const r = await t.db.query<{ v: string }>('SELECT $1::text AS v', [evil]);
    expect(r.rows[0]?.v).toBe(evil);
    expect((await t.db.query('SELECT * FROM tx_probe')).rowCount).toBe(2);
  });
});
