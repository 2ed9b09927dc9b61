/*
 * A minimal cookie-keeping client for the EHR's HTML forms, over real HTTP (fetch).
 * Used by the sign-in, screen and launch tests; redirects are never followed automatically,
 * so each test sees the exact status and Location.
 */
export class BrowserSession {
  cookies = new Map<string, string>();

  constructor(public baseUrl: string) {}

  get cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', this.cookieHeader);
    const res = await fetch(new URL(path, this.baseUrl), { ...init, headers, redirect: 'manual' });
    for (const set of res.headers.getSetCookie()) {
      const [pair] = set.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(set) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  get(path: string): Promise<Response> {
    return this.request(path);
  }

  postForm(path: string, fields: Record<string, string>): Promise<Response> {
    return this.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** The `_csrf` hidden input of the page at path (GETs it). */
  async csrfFrom(path: string): Promise<string> {
    const html = await (await this.get(path)).text();
    const m = /name="_csrf" value="([^"]+)"/.exec(html);
    if (!m) throw new Error(`no _csrf input on ${path}`);
    return m[1]!;
  }

  /** Signs in through the real form; resolves to the response of POST /login. */
  async signIn(username: string, password: string, extra: Record<string, string> = {}): Promise<Response> {
    const query = extra.returnTo ? `?returnTo=${encodeURIComponent(extra.returnTo)}` : '';
    const csrf = await this.csrfFrom(`/login${query}`);
    return this.postForm('/login', { username, password, _csrf: csrf, ...extra });
  }
}
