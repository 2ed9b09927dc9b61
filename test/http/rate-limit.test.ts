import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrate.ts';
import { errorHandler } from '../../src/http/errors.ts';
import { databaseRateLimit } from '../../src/http/rate-limit.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

function appWith(db: TestDatabase['db'], limit: number) {
  const app = express();
  app.set('trust proxy', true);
  app.use('/api', (_req, res, next) => {
    res.locals.errorFormat = 'oauth';
    next();
  });
  app.post('/api/token', databaseRateLimit(db, { name: 'token', windowSeconds: 60, limit }), (_req, res) => {
    res.json({ ok: true });
  });
  app.use(errorHandler());
  return app;
}

/**
 * Waits, when needed, until at least 10 s of the current 60-s window remain: the windows are
 * fixed (aligned to the epoch), and a test whose requests straddle a window's end sees its count
 * start over (a CI run failed so).
 */
async function awayFromWindowEnd() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 10_000) await new Promise((r) => setTimeout(r, left + 100));
}

describe('database-backed rate limits', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await migrate(t.db);
  });
  afterAll(async () => {
    await t.drop();
  });

  it('answers 429 with Retry-After and the endpoint vocabulary once the budget is spent', async () => {
    const app = appWith(t.db, 3);
    await awayFromWindowEnd();
    for (let i = 0; i < 3; i++)
      await request(app).post('/api/token').set('X-Forwarded-For', '203.0.113.7').expect(200);
    const r = await request(app).post('/api/token').set('X-Forwarded-For', '203.0.113.7').expect(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(r.body.error).toBe('rate_limited');
    // Another client still has its own budget.
    await request(app).post('/api/token').set('X-Forwarded-For', '203.0.113.8').expect(200);
  });

  it('shares one budget between instances (two apps, two pools, one database)', async () => {
    const a = appWith(t.db, 4);
    const b = appWith(await t.connectAnother(), 4);
    const ip = '198.51.100.20';
    await awayFromWindowEnd();
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(429);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(429);
  });
});
