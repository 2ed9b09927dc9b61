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
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(200);
    await request(a).post('/api/token').set('X-Forwarded-For', ip).expect(429);
    await request(b).post('/api/token').set('X-Forwarded-For', ip).expect(429);
  });
});
