/*
 * The EHR capability: what a clinician sees.
 * Routes (people-facing, HTML; the EHR session is mounted by src/http/app.ts):
 *   GET  /login                              sign-in form               sign-in.ts
 *   POST /login                              sign in                    sign-in.ts
 *   POST /logout                             sign out                   sign-in.ts
 *   GET  /                                   → /patients
 *   GET  /patients                           patient list and search    screens.ts
 *   GET  /patients/:id                       chart with Ocean buttons   screens.ts
 *   GET  /patients/:id/documents/:docId      a chart document           screens.ts
 * The sign-in form is rate-limited per address (LOGIN_RATE_LIMIT) besides the per-account throttle.
 */
import express, { Router } from 'express';
import type { AppContext, Capability } from '../context.ts';
import { loggableError } from '../http/errors.ts';
import { loadCurrentUser, noStore, requireUser } from '../web/current-user.ts';
import { csrfGuard } from '../web/session.ts';
import { screenRoutes } from './screens.ts';
import { type SignInChoices, signInRoutes } from './sign-in.ts';

/** How often expired sessions and ended throttle windows are deleted. */
const PURGE_INTERVAL_MS = 10 * 60 * 1000;

export async function createEhr(
  ctx: AppContext,
  deps: { signInChoices?: SignInChoices } = {},
): Promise<Capability> {
  const signIn = signInRoutes(ctx, deps.signInChoices ?? { localPasswords: ctx.config.localPasswords });
  const screens = screenRoutes(ctx);
  const currentUser = loadCurrentUser(ctx);
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 20 });

  const router = Router();
  router.get('/login', noStore, currentUser, signIn.form);
  router.post('/login', noStore, form, currentUser, signIn.submit);
  router.post(
    '/logout',
    form,
    (req, res, next) => (req.session?.userId ? csrfGuard(req, res, next) : res.redirect(303, '/login')),
    signIn.signOut,
  );
  router.get('/', currentUser, requireUser, (_req, res) => res.redirect(303, '/patients'));
  router.get('/patients', noStore, currentUser, requireUser, screens.list);
  router.get('/patients/:id', noStore, currentUser, requireUser, screens.chart);
  router.get('/patients/:id/documents/:docId', noStore, currentUser, requireUser, screens.document);

  let timer: NodeJS.Timeout | undefined;
  const purge = async () => {
    await signIn.purge();
    await ctx.sessions.store
      .purgeExpired()
      .catch((err) => ctx.logger.warn({ err: loggableError(err) }, 'session purge failed'));
  };

  return {
    name: 'ehr',
    router,
    rateLimits: [
      { name: 'login', method: 'POST', path: '/login', limit: ctx.config.rateLimits.login, format: 'html' },
    ],
    start() {
      timer = setInterval(() => void purge(), PURGE_INTERVAL_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
