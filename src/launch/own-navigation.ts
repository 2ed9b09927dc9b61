/*
 * Did this navigation to /launch come from our own screens? (Fetch Metadata, then Origin/Referer)
 * - `Sec-Fetch-Site` present: only `same-origin` is ours. `cross-site` and `same-site` are another
 *   site's page; `none` is a link opened from outside any page (an e-mail, a chat, a bookmark):
 *   none of them was a click on our chart, so none may launch without the person confirming
 * - absent (a browser older than Fetch Metadata, or plain http to a host that is not localhost,
 *   where browsers do not send it): an `Origin` or `Referer` naming another origin is not ours;
 *   our pages send a same-origin Referer (`<meta name="referrer" content="same-origin">`)
 * - a navigation whose Referer is our sign-in page is sign-in's redirect to a `returnTo` that
 *   someone else's link chose (`/login?returnTo=/launch?…`), not a click on a chart: not ours
 *   either (the browser keeps the Referer of the page that started a redirect chain)
 * - nothing at all to go by: treated as ours — a non-browser client, or a browser that tells
 *   nothing either way; the EHR session cookie (SameSite=Lax) still had to come along
 */
import type { Request } from 'express';

/** Our pages that send people on to a path chosen by a link (sign-in's returnTo). */
const PASS_THROUGH_PAGES = new Set(['/login']);

export function isOwnNavigation(req: Request, publicOrigin: string): boolean {
  const referer = refererOf(req);
  if (referer && referer.origin === publicOrigin && PASS_THROUGH_PAGES.has(referer.pathname)) return false;
  const site = req.get('sec-fetch-site');
  if (site !== undefined) return site.trim().toLowerCase() === 'same-origin';
  const origin = req.get('origin');
  if (origin !== undefined) return origin === publicOrigin;
  if (referer !== undefined) return referer !== null && referer.origin === publicOrigin;
  return true;
}

/** The Referer as a URL; null when it is there but unreadable, undefined when absent. */
function refererOf(req: Request): URL | null | undefined {
  const referer = req.get('referer');
  if (referer === undefined) return undefined;
  try {
    return new URL(referer);
  } catch {
    return null;
  }
}
