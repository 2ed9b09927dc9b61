/*
 * Normalises requests to the authorization endpoint before oidc-provider sees them.
 * - SMART 2.2 "authorize-post": a form POST is handed to the provider as the equivalent GET.
 *   (oidc-provider 9 allows POST only with SameSite=None session cookies; our sign-in state is the
 *   EHR session, read at the interaction, so the provider's own cookie is not needed on this request)
 * - oidc-provider drops offline_access unless prompt=consent is present, and SMART clients never
 *   send prompt: a request asking for offline_access without any prompt gets prompt=consent, which
 *   is what happens anyway (every launch gets a fresh grant, consented or pre-authorized). The
 *   request is marked (promptAddedHere): a prompt the client did not send asks for no page that
 *   our consent rules (./launch-grant.ts consentNeeded) do not ask for
 * - parameters sent twice are left for the provider to refuse (RFC 6749 §3.1)
 */
import type { Request } from 'express';

/** The authorization requests whose prompt=consent was added here, not sent by the client. */
const promptAdded = new WeakSet<object>();

/** Whether this request's prompt (consent) was added by prepareAuthorizationRequest. */
export const promptAddedHere = (req: object): boolean => promptAdded.has(req);

export function prepareAuthorizationRequest(req: Request, mountPath: string): void {
  const qIndex = req.url.indexOf('?');
  const path = qIndex === -1 ? req.url : req.url.slice(0, qIndex);
  let params: URLSearchParams;
  if (req.method === 'POST') {
    params = new URLSearchParams();
    const body = (req.body ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(body)) {
      for (const value of Array.isArray(v) ? v : [v]) if (typeof value === 'string') params.append(k, value);
    }
    req.method = 'GET';
    delete req.headers['content-type'];
    delete req.headers['content-length'];
    delete req.headers['transfer-encoding'];
  } else {
    params = new URLSearchParams(qIndex === -1 ? '' : req.url.slice(qIndex + 1));
  }
  const scopes = (params.get('scope') ?? '').split(' ');
  if (scopes.includes('offline_access') && !params.has('prompt')) {
    params.set('prompt', 'consent');
    promptAdded.add(req);
  }
  const query = params.toString();
  req.url = query ? `${path}?${query}` : path;
  req.originalUrl = `${mountPath}${req.url}`;
}
