/*
 * Local redirects: where a person may be sent back to after sign-in (or any other step), given a
 * value someone else may have chosen (`returnTo` in a link, a form field, the session).
 * - the value is resolved ONCE, as a browser would resolve it against our origin; every check is
 *   made on that result, and the result is what is returned — never the raw string, whose
 *   dot-segments (`/.//x`, `/%2e//x`, `/a/..//x`) would normalise to `//x`, a different host
 * - the result must stay on our origin and its path must start with exactly one `/`
 * - refused outright: control characters (tabs and newlines are silently dropped by URL parsers),
 *   backslashes (browsers read `\` as `/`), encoded slashes and backslashes in the path (`%2f`,
 *   `%5c`: some layers decode them into a second slash), and anything over 2 kB
 * - a refused value is `undefined`: the caller goes to its home page instead
 * - the answer is a fixed point: resolving it again gives itself (nothing left to normalise)
 */

/** Resolving against a name that can never be a real host: only the path part can survive. */
const BASE = new URL('http://local-redirect.invalid/');
const MAX_LENGTH = 2048;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const FORBIDDEN = /[\u0000-\u001f\u007f\\]/;
const ENCODED_SLASH = /%(2f|5c)/i;

/** The local path (with query and fragment) that `value` resolves to, or undefined when it is anything else. */
export function localPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LENGTH) return undefined;
  if (!value.startsWith('/') || FORBIDDEN.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value, BASE);
  } catch {
    return undefined;
  }
  if (url.origin !== BASE.origin || url.username || url.password) return undefined;
  const { pathname } = url;
  if (!pathname.startsWith('/') || pathname.startsWith('//') || ENCODED_SLASH.test(pathname))
    return undefined;
  const path = `${url.pathname}${url.search}${url.hash}`;
  // What the URL parser produced must itself be clean and stable (it percent-encodes, never decodes).
  if (FORBIDDEN.test(path) || new URL(path, BASE).href !== url.href) return undefined;
  return path;
}

/** `localPath(value)`, or `home` when value is not a safe local path. */
export function localRedirectTarget(value: unknown, home = '/'): string {
  return localPath(value) ?? home;
}
