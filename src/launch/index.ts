/*
 * The EHR launch: GET /launch?patient={id}&site={siteNum}&action={action} (CONTRACT §3.2, §3.4 steps 1–2).
 * - not signed in → the sign-in page, then straight back here
 * - only a click on our own screens launches at once (./own-navigation.ts); any other navigation
 *   (another site's page, a link in an e-mail) gets a page naming the patient and the action,
 *   whose button POSTs /launch with the session's CSRF token: no one else can launch for a
 *   clinician, and the audit trail's launch.created was the clinician's own click
 * - every refusal (missing or malformed parameter, unknown patient, unknown site, an action the
 *   site does not offer, a site whose client has no launch URL) is a 4xx page and writes nothing
 * - otherwise one launch context (single-use, ≤ LAUNCH_CONTEXT_TTL, bound to user, patient,
 *   site and client) → 302 to the launch URL with siteNum, action, iss (= FHIR base) and
 *   launch added; a query the launch URL already has is kept
 * - audited as launch.created with ids only, by the statement that writes the context
 */
import type { Patient } from '@medplum/fhirtypes';
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import type { AppContext, Capability } from '../context.ts';
import { readResource } from '../fhir/repository.ts';
import { isValidId } from '../fhir/resource-types.ts';
import { badRequest, HttpError, NotFoundError, notFound } from '../http/errors.ts';
import { getSite } from '../sites/sites.ts';
import { loadCurrentUser, loginUrl, noStore } from '../web/current-user.ts';
import { csrfGuard, csrfToken } from '../web/session.ts';
import { createLaunchContext, LaunchRefusedError } from './launch-contexts.ts';
import { ACTION_PATTERN, launchRedirectUrl, SITE_PATTERN } from './launch-url.ts';
import { isOwnNavigation } from './own-navigation.ts';

function param(query: Record<string, unknown>, name: string, pattern: RegExp, what: string): string {
  const v = query[name];
  if (v === undefined || v === '') throw badRequest(`This launch link is incomplete: it names no ${what}.`);
  if (typeof v !== 'string' || !pattern.test(v))
    throw badRequest(`This launch link is damaged: the ${what} is not valid.`);
  return v;
}

interface LaunchRequest {
  patientId: string;
  siteNum: string;
  action: string;
}

function launchRequest(fields: Record<string, unknown>): LaunchRequest {
  return {
    patientId: param(fields, 'patient', /^[A-Za-z0-9\-.]{1,64}$/, 'patient'),
    siteNum: param(fields, 'site', SITE_PATTERN, 'Ocean site'),
    action: param(fields, 'action', ACTION_PATTERN, 'Ocean action'),
  };
}

const NO_SUCH_PATIENT = 'There is no patient with that chart number, so Ocean cannot be opened for them.';

async function patientOf(ctx: AppContext, patientId: string): Promise<Patient> {
  const stored = isValidId(patientId) ? await readResource(ctx.db, 'Patient', patientId) : undefined;
  if (!stored) throw notFound(NO_SUCH_PATIENT);
  return stored.resource;
}

/** The patient's name as the chart heads it (official, else usual, else the first), for the confirmation. */
function nameOf(patient: Patient): string {
  const names = patient.name ?? [];
  const n = names.find((x) => x.use === 'official') ?? names.find((x) => x.use === 'usual') ?? names[0];
  return [...(n?.given ?? []), n?.family].filter(Boolean).join(' ') || n?.text || '(no name)';
}

/** Records the launch context and sends the browser to the site's launch URL. */
async function launchAndRedirect(
  ctx: AppContext,
  req: Request,
  res: Response,
  userId: string,
  l: LaunchRequest,
  status: 302 | 303,
): Promise<void> {
  let created: Awaited<ReturnType<typeof createLaunchContext>>;
  try {
    created = await createLaunchContext(
      ctx,
      { userId, patientId: l.patientId, siteNum: l.siteNum, action: l.action },
      { requestId: String(req.id ?? ''), ip: req.ip ?? null },
    );
  } catch (err) {
    throw err instanceof LaunchRefusedError ? refusalPage(err, l.siteNum, l.action) : err;
  }
  res.redirect(
    status,
    launchRedirectUrl(created.launchUrl, {
      siteNum: l.siteNum,
      action: l.action,
      iss: ctx.config.fhirBaseUrl,
      launch: created.launchId,
    }),
  );
}

/**
 * The one-click confirmation for a launch that did not come from our own screens: who the
 * patient is and what Ocean will do, then a CSRF-protected POST /launch. The site and action
 * are checked first, so a link naming neither is refused here, as it would be by the launch.
 */
async function renderConfirmation(
  ctx: AppContext,
  req: Request,
  res: Response,
  l: LaunchRequest,
  patient: Patient,
): Promise<void> {
  let actionLabel: string | undefined;
  try {
    actionLabel = (await getSite(ctx, l.siteNum)).actions.find((a) => a.action === l.action)?.label;
  } catch (err) {
    if (err instanceof NotFoundError)
      throw refusalPage(new LaunchRefusedError('site', 'no such site'), l.siteNum, l.action);
    throw err;
  }
  if (!actionLabel)
    throw refusalPage(new LaunchRefusedError('action', 'no such action'), l.siteNum, l.action);
  res.status(200).render('launch/confirm', {
    title: 'Open Ocean?',
    csrfToken: csrfToken(req),
    patientName: nameOf(patient),
    birthDate: patient.birthDate ?? '—',
    patientId: l.patientId,
    siteNum: l.siteNum,
    action: l.action,
    actionLabel,
    chartHref: `/patients/${encodeURIComponent(l.patientId)}`,
  });
}

/** GET /launch: straight to Ocean from our own screens; a confirmation page for any other navigation. */
export function launchRoute(ctx: AppContext): RequestHandler {
  const publicOrigin = new URL(ctx.config.publicUrl).origin;
  return async (req, res) => {
    const user = res.locals.currentUser;
    if (!user) {
      res.redirect(303, loginUrl(req.originalUrl));
      return;
    }
    const l = launchRequest(req.query as Record<string, unknown>);
    // A HEAD (link preview, prefetch) must not spend a launch.
    if (req.method === 'HEAD') {
      res.status(204).end();
      return;
    }
    if (!isOwnNavigation(req, publicOrigin)) {
      await renderConfirmation(ctx, req, res, l, await patientOf(ctx, l.patientId));
      return;
    }
    // The launch's own statement checks the patient (an unknown one is refused, nothing written).
    await launchAndRedirect(ctx, req, res, user.id, l, 302);
  };
}

/** POST /launch: the confirmation's button (CSRF-checked before this runs). */
export function confirmedLaunchRoute(ctx: AppContext): RequestHandler {
  return async (req, res) => {
    const user = res.locals.currentUser;
    if (!user) {
      res.redirect(303, '/login');
      return;
    }
    const l = launchRequest((req.body ?? {}) as Record<string, unknown>);
    await launchAndRedirect(ctx, req, res, user.id, l, 303);
  };
}

/** What a person is told when the site, its action or its client's launch URL is missing. */
function refusalPage(err: LaunchRefusedError, siteNum: string, action: string): HttpError {
  switch (err.reason) {
    case 'patient':
      return notFound(NO_SUCH_PATIENT);
    case 'site':
      return notFound(`Ocean site ${siteNum} is not configured here. Ask your administrator to add it.`);
    case 'action':
      return notFound(
        `Ocean site ${siteNum} is not set up for "${action}". Ask your administrator to add that button.`,
      );
    case 'launch_url':
      return new HttpError(
        409,
        'not_configured',
        `Ocean site ${siteNum} has no launch URL yet. Ask your administrator to set one.`,
      );
    default:
      return err;
  }
}

export async function createLaunch(ctx: AppContext): Promise<Capability> {
  const currentUser = loadCurrentUser(ctx);
  const form = express.urlencoded({ extended: false, limit: ctx.config.bodyLimit, parameterLimit: 20 });
  const router = Router();
  router.get('/launch', noStore, currentUser, launchRoute(ctx));
  router.post('/launch', noStore, form, currentUser, csrfGuard, confirmedLaunchRoute(ctx));
  return { name: 'launch', router };
}
