/*
 * The referrals capability: Ocean's eReferral messages filed into the patient's chart (CONTRACT §3.7).
 *
 *   POST   /fhir/$process-message                          Ocean posts a message   ./process-message.ts
 *   GET    /admin/api/ocean-integrations                   list integrations       ./admin-api.ts
 *   POST   /admin/api/ocean-integrations                   register a site (secrets shown once)
 *   GET    /admin/api/ocean-integrations/:id               one integration
 *   DELETE /admin/api/ocean-integrations/:id               revoke it
 *   POST   /admin/api/ocean-integrations/:id/credentials   rotate its credentials (shown once)
 *   PUT    /admin/api/ocean-integrations/:id/ocean-oauth   Ocean's OAuth2 client for letters
 *   DELETE /admin/api/ocean-integrations/:id/ocean-oauth   forget it
 *   GET    /admin/api/ocean-messages                       the inbox (?outcome=unmatched&limit=)
 *   GET    /admin/api/ocean-messages/:id                   one message, with its body
 *   POST   /admin/api/ocean-messages/:id/match             file it into {patient_id}'s chart
 *   POST   /admin/api/ocean-messages/:id/dismiss           dismiss it
 *   GET    /admin/ocean …                                  the console page   ./console.ts
 *   GET    /patients/:id/referrals/:srId/letter            the stored letter, from the chart
 *
 * Background: the letter job (./letters.ts), on every instance.
 */
import express, { type RequestHandler, Router } from 'express';
import { apiActor } from '../admin/api.ts';
import { adminApiRouter } from '../admin/api-router.ts';
import type { AppContext, Capability } from '../context.ts';
import { HttpError, notFound, speaks } from '../http/errors.ts';
import { loadCurrentUser, noStore, requireUser } from '../web/current-user.ts';
import { ReferralAdmin } from './admin-api.ts';
import { referralConsole } from './console.ts';
import { Integrations, integrationClientMetadata } from './integrations.ts';
import { LetterJob, readLetter } from './letters.ts';
import { messageAuthenticator } from './message-auth.ts';
import { processMessageHandler } from './process-message.ts';

type Handler = (req: express.Request, res: express.Response) => Promise<void>;
const handle =
  (fn: Handler): RequestHandler =>
  (req, res, next) => {
    fn(req, res).catch(next);
  };
const param = (req: express.Request, name: string) => String(req.params[name] ?? '');
const MESSAGE_TYPES = ['application/fhir+json', 'application/json', 'application/json+fhir'];

/** The referrals capability, with its letter job (tests and operations run a pass on demand). */
export interface ReferralsCapability extends Capability {
  letters: LetterJob;
  /** oidc-provider metadata of the integrations' OAuth clients (the authorization server's Client lookup). */
  clientMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
}

export function createReferrals(ctx: AppContext): ReferralsCapability {
  const integrations = new Integrations(ctx.db, ctx.box, ctx.config.fhirBaseUrl);
  const letters = new LetterJob(ctx.db, integrations, ctx.logger);
  const kickLetters = () => letters.kick();
  const admin = new ReferralAdmin(ctx.db, ctx.audit, integrations, kickLetters);
  const authenticate = messageAuthenticator(integrations, ctx.keys, ctx.config.fhirBaseUrl);
  const processMessage = processMessageHandler({
    db: ctx.db,
    audit: ctx.audit,
    integrations,
    onFiled: kickLetters,
  });

  // ---- Ocean's endpoint: FHIR vocabulary; credentials checked before the body is read
  const onlyPost: RequestHandler = (req, _res, next) =>
    next(
      req.method === 'POST'
        ? undefined
        : new HttpError(405, 'method_not_allowed', 'use POST', { Allow: 'POST' }, 'not-supported'),
    );
  const sender: RequestHandler = (req, res, next) => {
    authenticate(req).then((s) => {
      res.locals.sender = s;
      next();
    }, next);
  };
  const messageBody: RequestHandler = (req, res, next) =>
    req.is(MESSAGE_TYPES)
      ? express.text({ type: MESSAGE_TYPES, limit: ctx.config.bodyLimit })(req, res, next)
      : next(
          new HttpError(
            415,
            'unsupported_media_type',
            'send the message as application/fhir+json',
            {},
            'not-supported',
          ),
        );
  const api = Router();
  api.all('/fhir/\\$process-message', speaks('fhir'), onlyPost, sender, messageBody, handle(processMessage));

  // ---- admin API: one line per path; another method on a known path is a 405
  const { router: adminApi, route, body, noBody } = adminApiRouter(ctx);
  const show =
    (status = 200) =>
    (res: express.Response, value: unknown) =>
      res.status(status).json(value);
  route('/ocean-integrations', {
    get: [handle(async (_req, res) => void show()(res, { integrations: await integrations.list() }))],
    post: [
      ...body,
      handle(async (req, res) => {
        const { integration, credentials } = await admin.createIntegration(apiActor(req), req.body);
        res.location(`/admin/api/ocean-integrations/${integration.id}`);
        show(201)(res, { ...integration, ...credentials });
      }),
    ],
  });
  route('/ocean-integrations/:id', {
    get: [handle(async (req, res) => void show()(res, await integrations.get(param(req, 'id'))))],
    delete: [
      handle(async (req, res) => {
        await admin.delete(apiActor(req), param(req, 'id'));
        res.status(204).end();
      }),
    ],
  });
  route('/ocean-integrations/:id/credentials', {
    post: [
      ...noBody,
      handle(async (req, res) => {
        const { integration, credentials } = await admin.rotate(apiActor(req), param(req, 'id'));
        show()(res, { ...integration, ...credentials });
      }),
    ],
  });
  route('/ocean-integrations/:id/ocean-oauth', {
    put: [
      ...body,
      handle(
        async (req, res) =>
          void show()(res, await admin.setOceanOAuth(apiActor(req), param(req, 'id'), req.body)),
      ),
    ],
    delete: [
      handle(
        async (req, res) =>
          void show()(res, await admin.setOceanOAuth(apiActor(req), param(req, 'id'), null)),
      ),
    ],
  });
  route('/ocean-messages', {
    get: [handle(async (req, res) => void show()(res, { messages: await admin.listMessages(req.query) }))],
  });
  route('/ocean-messages/:id', {
    get: [handle(async (req, res) => void show()(res, await admin.getMessage(param(req, 'id'))))],
  });
  route('/ocean-messages/:id/match', {
    post: [
      ...body,
      handle(
        async (req, res) => void show()(res, await admin.match(apiActor(req), param(req, 'id'), req.body)),
      ),
    ],
  });
  route('/ocean-messages/:id/dismiss', {
    post: [
      ...noBody,
      handle(async (req, res) => void show()(res, await admin.dismiss(apiActor(req), param(req, 'id')))),
    ],
  });

  // ---- people: the console page and the letter from the chart
  const currentUser = loadCurrentUser(ctx);
  const router = Router();
  router.use('/admin/api', adminApi);
  router.use('/admin/ocean', referralConsole(ctx, admin, currentUser));
  router.get(
    '/patients/:id/referrals/:srId/letter',
    noStore,
    currentUser,
    requireUser,
    handle(async (req, res) => {
      const patientId = param(req, 'id');
      const srId = param(req, 'srId');
      const letter = await readLetter(ctx.db, patientId, srId);
      if (!letter) throw notFound('That letter is not stored in this chart.');
      await ctx.audit.record({
        action: 'ehr.referral_letter.view',
        userId: res.locals.currentUser!.id,
        patientId,
        entity: `ServiceRequest/${srId}`,
        requestId: req.id != null ? String(req.id) : null,
        ip: req.ip ?? null,
      });
      res.setHeader('Content-Type', 'application/pdf');
      res.setHeader('Content-Disposition', `inline; filename="referral-letter-${srId}.pdf"`);
      res.send(letter.content);
    }),
  );

  return {
    name: 'referrals',
    api,
    router,
    letters,
    clientMetadata: (clientId) => integrationClientMetadata(ctx.db, clientId),
    // Refusals before the route runs (413 from the body guard) speak FHIR to Ocean.
    paths: [{ path: /^\/fhir\/\$process-message\/?$/, errorFormat: 'fhir' }],
    start() {
      letters.start();
      letters.kick();
    },
    async stop() {
      await letters.stop();
    },
  };
}
