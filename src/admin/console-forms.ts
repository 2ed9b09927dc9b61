/*
 * Turns the console's HTML form fields into the admin API's JSON inputs, so both go through the
 * same validation (the stores' zod schemas) and the same refusals.
 * - one text area line per redirect URI; one line per chart button: `action` or `action | label`
 * - a checkbox is "on" or absent; the form says it was shown with a hidden `<name>_shown` field
 * - nothing here validates: it only shapes; a shape the schemas refuse is reported per field
 */

type Form = Record<string, unknown>;

const str = (f: Form, name: string): string => (typeof f[name] === 'string' ? (f[name] as string) : '');
const lines = (text: string): string[] =>
  text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
const optional = (text: string): string | null => (text.trim() === '' ? null : text.trim());
const checkbox = (f: Form, name: string): boolean => f[name] === 'on' || f[name] === 'true';

export function clientInputFromForm(f: Form, mode: 'create' | 'update'): Record<string, unknown> {
  const input: Record<string, unknown> = {
    name: str(f, 'name'),
    redirect_uris: lines(str(f, 'redirect_uris')),
    launch_url: optional(str(f, 'launch_url')),
    token_endpoint_auth_method: str(f, 'token_endpoint_auth_method'),
    id_token_signed_response_alg: str(f, 'id_token_signed_response_alg'),
    require_pkce: checkbox(f, 'require_pkce'),
    jwks_uri: optional(str(f, 'jwks_uri')),
  };
  if (mode === 'create') {
    const id = str(f, 'client_id').trim();
    if (id) input.client_id = id;
    if (input.launch_url === null) delete input.launch_url;
    if (input.jwks_uri === null) delete input.jwks_uri;
  }
  const scope = str(f, 'scope').trim().split(/\s+/).filter(Boolean).join(' ');
  if (scope) input.scope = scope;
  else if (mode === 'update') input.scope = null;
  return input;
}

/** "viewMap" or "viewMap | Ocean Health Map", one per line. */
export function actionsFromText(text: string): (string | { action: string; label: string })[] {
  return lines(text).map((line) => {
    const bar = line.indexOf('|');
    if (bar < 0) return line;
    return { action: line.slice(0, bar).trim(), label: line.slice(bar + 1).trim() };
  });
}

export function actionsToText(actions: { action: string; label: string }[]): string {
  return actions.map((a) => (a.label === a.action ? a.action : `${a.action} | ${a.label}`)).join('\n');
}

export function siteInputFromForm(f: Form): Record<string, unknown> {
  const actions = str(f, 'actions');
  return {
    site_num: str(f, 'site_num').trim(),
    shared_encryption_key: str(f, 'shared_encryption_key'),
    ...(actions.trim() ? { actions: actionsFromText(actions) } : {}),
  };
}

export function siteUpdateFromForm(f: Form): Record<string, unknown> {
  const sek = str(f, 'shared_encryption_key');
  return {
    actions: actionsFromText(str(f, 'actions')),
    ...(sek !== '' ? { shared_encryption_key: sek } : {}),
  };
}

export function userInputFromForm(f: Form): Record<string, unknown> {
  const roles = ['admin', 'clinician'].filter((r) => checkbox(f, `role_${r}`));
  const input: Record<string, unknown> = {
    username: str(f, 'username'),
    password: str(f, 'password'),
    given_name: str(f, 'given_name'),
    family_name: str(f, 'family_name'),
    roles,
  };
  const email = str(f, 'email').trim();
  if (email) input.email = email;
  const system = str(f, 'identifier_system').trim();
  const value = str(f, 'identifier_value').trim();
  if (system || value) input.identifiers = [{ system, value }];
  return input;
}

export function rolesFromForm(f: Form): string[] {
  return ['admin', 'clinician'].filter((r) => checkbox(f, `role_${r}`));
}

/** Per-field messages for a form: the first message of each top-level field. */
export function fieldErrors(issues: { path: string; message: string }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of issues) {
    const key = i.path.split('.')[0] || '_form';
    out[key] ??= i.message;
  }
  return out;
}
