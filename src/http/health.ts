import { Router } from 'express';
import type { Database } from '../db/database.ts';

/**
 * Liveness (the process answers) and readiness (the database answers, within 2 s). `detail` adds
 * members to a ready answer (the SECRETS_KEY rotation's progress): counts and states only.
 */
export function healthRoutes(db: Database, detail: () => Record<string, unknown> = () => ({})): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    res.set('Cache-Control', 'no-store');
    try {
      await withTimeout(db.ping(), 2000);
      res.json({ status: 'ready', database: 'ok', ...detail() });
    } catch {
      res.status(503).json({ status: 'unavailable', database: 'unreachable' });
    }
  });
  return router;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
