/*
 * The EHR launch: GET /launch?patient={id}&site={siteNum}&action={action} (SPEC §3.2, §3.4 steps 1–2).
 * - not signed in → the sign-in page, then straight back here
 * - every refusal (missing or malformed parameter, unknown patient, unknown site, an action the
 *   site does not offer, a site whose client has no launch URL) is a 4xx page and writes nothing
 * - otherwise one launch context (single-use, ≤ LAUNCH_CONTEXT_TTL, bound to user, patient,
 *   site and client) → 302 to the launch URL with siteNum, action, iss (= FHIR base) and
 *   launch added; a query the launch URL already has is kept
 * - audited as launch.created with ids only, by the statement that writes the context
 */
import { type RequestHandler, Router } from 'express';
import type { AppContext, Capability } from '../context.ts';
import { readResource } from '../fhir/repository.ts';
import { isValidId } from '../fhir/resource-types.ts';
import { badRequest, HttpError, notFound } from '../http/errors.ts';
import { loadCurrentUser, loginUrl, noStore } from '../web/current-user.ts';
import { createLaunchContext, LaunchRefusedError } from './launch-contexts.ts';

const SITE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const ACTION_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** `{launch_url}` with the launch parameters set (existing query members kept, ours win). */
export function launchRedirectUrl(
  launchUrl: string,
  p: { siteNum: string; action: string; iss: string; launch: string },
): string {
  const url = new URL(launchUrl);
  url.searchParams.set('siteNum', p.siteNum);
  url.searchParams.set('action', p.action);
  url.searchParams.set('iss', p.iss);
  url.searchParams.set('launch', p.launch);
  return url.toString();
}

function param(query: Record<string, unknown>, name: string, pattern: RegExp, what: string): string {
  const v = query[name];
  if (v === undefined || v === '') throw badRequest(`This launch link is incomplete: it names no ${what}.`);
  if (typeof v !== 'string' || !pattern.test(v))
    throw badRequest(`This launch link is damaged: the ${what} is not valid.`);
  return v;
}

export function launchRoute(ctx: AppContext): RequestHandler {
  return async (req, res) => {
    const user = res.locals.currentUser;
    if (!user) {
      res.redirect(303, loginUrl(req.originalUrl));
      return;
    }
    const query = req.query as Record<string, unknown>;
    const patientId = param(query, 'patient', /^[A-Za-z0-9\-.]{1,64}$/, 'patient');
    const siteNum = param(query, 'site', SITE_PATTERN, 'Ocean site');
    const action = param(query, 'action', ACTION_PATTERN, 'Ocean action');
    // A HEAD (link preview, prefetch) must not spend a launch.
    if (req.method === 'HEAD') {
      res.status(204).end();
      return;
    }
    if (!isValidId(patientId) || !(await readResource(ctx.db, 'Patient', patientId))) {
      throw notFound('There is no patient with that chart number, so Ocean cannot be opened for them.');
    }
    let created: Awaited<ReturnType<typeof createLaunchContext>>;
    try {
      created = await createLaunchContext(
        ctx,
        { userId: user.id, patientId, siteNum, action },
        { requestId: String(req.id ?? ''), ip: req.ip ?? null },
      );
    } catch (err) {
      throw err instanceof LaunchRefusedError ? refusalPage(err, siteNum, action) : err;
    }
    res.redirect(
      302,
      launchRedirectUrl(created.launchUrl, {
        siteNum,
        action,
        iss: ctx.config.fhirBaseUrl,
        launch: created.launchId,
      }),
    );
  };
}

/** What a person is told when the site, its action or its client's launch URL is missing. */
function refusalPage(err: LaunchRefusedError, siteNum: string, action: string): HttpError {
  switch (err.reason) {
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
  const router = Router();
  router.get('/launch', noStore, loadCurrentUser(ctx), launchRoute(ctx));
  return { name: 'launch', router };
}
