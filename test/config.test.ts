import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../src/config.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const TOKEN = 'x'.repeat(40);

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('has working defaults for development', () => {
    const c = loadConfig({});
    expect(c.env).toBe('development');
    expect(c.port).toBe(3000);
    expect(c.publicUrl).toBe('http://localhost:3000');
    expect(c.fhirBaseUrl).toBe('http://localhost:3000/fhir');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.demoData).toBe(true);
    expect(c.ttl.accessToken).toBeLessThanOrEqual(3600);
    expect(c.ttl.launchContext).toBeLessThanOrEqual(300);
  });

  it('derives the issuer from PUBLIC_URL without a trailing slash', () => {
    const c = loadConfig({ PUBLIC_URL: 'https://ehr.example.org/' });
    expect(c.fhirBaseUrl).toBe('https://ehr.example.org/fhir');
    expect(c.secureCookies).toBe(true);
  });

  it('refuses a PUBLIC_URL with a path, which would split the issuer from the discovered endpoints', () => {
    expect(problems({ PUBLIC_URL: 'https://ehr.example.org/clinic' })).toEqual([
      expect.stringMatching(/^PUBLIC_URL: must be an origin/),
    ]);
  });

  it.each([
    ['PORT', 'eighty', 'PORT'],
    ['PORT', '70000', 'PORT'],
    ['PUBLIC_URL', 'not a url', 'PUBLIC_URL'],
    ['PUBLIC_URL', 'ftp://x.example', 'PUBLIC_URL'],
    ['DATABASE_URL', 'mysql://x', 'DATABASE_URL'],
    ['SECRETS_KEY', 'c2hvcnQ=', 'SECRETS_KEY'],
    ['ADMIN_TOKEN', 'short', 'ADMIN_TOKEN'],
    ['NODE_ENV', 'staging', 'NODE_ENV'],
    ['LOG_LEVEL', 'loud', 'LOG_LEVEL'],
    ['ACCESS_TOKEN_TTL', '5', 'ACCESS_TOKEN_TTL'],
    ['LAUNCH_CONTEXT_TTL', '900', 'LAUNCH_CONTEXT_TTL'],
    ['DEMO_DATA', 'maybe', 'DEMO_DATA'],
    ['BODY_LIMIT', 'lots', 'BODY_LIMIT'],
    ['TRUST_PROXY', 'some proxies!', 'TRUST_PROXY'],
  ])('refuses %s=%s with a message naming it', (name, value, expected) => {
    const p = problems({ [name]: value });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(new RegExp(`^${expected}`));
  });

  it("sizes the embedded database's page cache small by default, and refuses a size PostgreSQL would not read", () => {
    expect(loadConfig({}).embeddedSharedBuffers).toBe('16MB');
    expect(loadConfig({ EMBEDDED_SHARED_BUFFERS: '256MB' }).embeddedSharedBuffers).toBe('256MB');
    for (const bad of ['16', '16mb', '-1MB', "16MB' -c fsync=off", '0MB']) {
      expect(problems({ EMBEDDED_SHARED_BUFFERS: bad })[0]).toMatch(/^EMBEDDED_SHARED_BUFFERS/);
    }
  });

  it('reports every bad value at once', () => {
    expect(problems({ PORT: 'x', LOG_LEVEL: 'y', NODE_ENV: 'z' })).toHaveLength(3);
  });

  it('never echoes a secret in its messages', () => {
    const p = problems({ SECRETS_KEY: 'my-very-secret-value', ADMIN_TOKEN: 'tiny-secret' });
    expect(p.join('\n')).not.toMatch(/my-very-secret-value|tiny-secret/);
  });

  it('refuses insecure production settings', () => {
    const p = problems({ NODE_ENV: 'production', PUBLIC_URL: 'http://ehr.example.org' });
    expect(p.some((m) => m.startsWith('SECRETS_KEY'))).toBe(true);
    expect(p.some((m) => m.startsWith('ADMIN_TOKEN'))).toBe(true);
    expect(p.some((m) => m.startsWith('PUBLIC_URL') && m.includes('https'))).toBe(true);
    expect(
      problems({
        NODE_ENV: 'production',
        PUBLIC_URL: 'https://e.example',
        SECRETS_KEY: KEY,
        ADMIN_TOKEN: TOKEN,
        METRICS_TOKEN: TOKEN,
        DEMO_DATA: 'true',
      }),
    ).toEqual([expect.stringMatching(/^DEMO_DATA/)]);
  });

  it('refuses /metrics open to anyone in production: METRICS_TOKEN, or METRICS_INTERNAL_ONLY said explicitly', () => {
    const base = {
      NODE_ENV: 'production',
      PUBLIC_URL: 'https://e.example',
      SECRETS_KEY: KEY,
      ADMIN_TOKEN: TOKEN,
    };
    expect(problems(base)).toEqual([expect.stringMatching(/^METRICS_TOKEN: required in production/)]);
    expect(problems({ ...base, METRICS_INTERNAL_ONLY: 'false' })).toHaveLength(1);
    expect(problems({ ...base, METRICS_TOKEN: TOKEN })).toEqual([]);
    expect(problems({ ...base, METRICS_INTERNAL_ONLY: 'true' })).toEqual([]);
    expect(loadConfig({ ...base, METRICS_INTERNAL_ONLY: 'true' }).metricsInternalOnly).toBe(true);
    // Outside production nothing is required: npm start serves /metrics to the developer.
    expect(loadConfig({}).metricsInternalOnly).toBe(false);
    expect(problems({ METRICS_INTERNAL_ONLY: 'perhaps' })).toEqual([
      expect.stringMatching(/^METRICS_INTERNAL_ONLY/),
    ]);
  });

  it('accepts a complete production configuration and never loads demo data there', () => {
    const c = loadConfig({
      NODE_ENV: 'production',
      PUBLIC_URL: 'https://ehr.example.org',
      SECRETS_KEY: KEY,
      ADMIN_TOKEN: TOKEN,
      METRICS_TOKEN: TOKEN,
    });
    expect(c.isProduction).toBe(true);
    expect(c.demoData).toBe(false);
    expect(c.secretsKey?.length).toBe(32);
  });

  it('summarises itself without secrets', () => {
    const c = loadConfig({
      SECRETS_KEY: KEY,
      ADMIN_TOKEN: TOKEN,
      DATABASE_URL: 'postgres://u:pw@db:5432/ehr',
    });
    const text = describeConfig(c, 'PostgreSQL db:5432/ehr').join('\n');
    expect(text).toContain('http://localhost:3000/fhir');
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain('pw');
  });
  describe('sign-in through an identity provider (IDP_*, LOCAL_PASSWORDS)', () => {
    const IDP = {
      IDP_ISSUER: 'https://login.microsoftonline.com/0b6c8d1e-1111-2222-3333-444455556666/v2.0',
      IDP_CLIENT_ID: 'ehr-app',
      IDP_CLIENT_SECRET: 'the-client-secret-value',
    };

    it('is off by default, with local passwords on', () => {
      const c = loadConfig({});
      expect(c.identityProvider).toBeUndefined();
      expect(c.localPasswords).toBe(true);
    });

    it('gathers the provider settings, with defaults for scope, roles claim and label', () => {
      const c = loadConfig({ ...IDP, IDP_ROLES_CLAIM: 'realm_access.roles', IDP_ADMIN_ROLE: 'ehr-admin' });
      expect(c.identityProvider).toEqual({
        issuer: IDP.IDP_ISSUER,
        clientId: 'ehr-app',
        clientSecret: 'the-client-secret-value',
        scope: 'openid profile email',
        rolesClaim: 'realm_access.roles',
        adminRole: 'ehr-admin',
        buttonLabel: 'Sign in with your organization account',
      });
    });

    it('needs the client id and secret with the issuer, and the issuer with them', () => {
      expect(problems({ IDP_ISSUER: IDP.IDP_ISSUER })).toEqual([
        expect.stringMatching(/^IDP_CLIENT_ID: required/),
        expect.stringMatching(/^IDP_CLIENT_SECRET: required/),
      ]);
      expect(problems({ IDP_CLIENT_ID: 'x' })).toEqual([expect.stringMatching(/^IDP_ISSUER: required/)]);
    });

    it('refuses an issuer that is not a URL, carries a query, or is plain http in production', () => {
      expect(problems({ ...IDP, IDP_ISSUER: 'login.example.org' })).toEqual([
        expect.stringMatching(/^IDP_ISSUER=.*issuer URL/),
      ]);
      expect(problems({ ...IDP, IDP_ISSUER: 'https://idp.example.org/?tenant=1' })).toEqual([
        expect.stringMatching(/^IDP_ISSUER: must be an http\(s\) URL without query/),
      ]);
      expect(
        problems({
          ...IDP,
          IDP_ISSUER: 'http://idp.example.org',
          NODE_ENV: 'production',
          PUBLIC_URL: 'https://ehr.example.org',
          SECRETS_KEY: KEY,
          ADMIN_TOKEN: TOKEN,
          METRICS_TOKEN: TOKEN,
        }),
      ).toEqual([expect.stringMatching(/^IDP_ISSUER: must be https in production/)]);
    });

    it('refuses a scope without openid', () => {
      expect(problems({ ...IDP, IDP_SCOPE: 'profile email' })).toEqual([
        expect.stringMatching(/^IDP_SCOPE=/),
      ]);
      expect(loadConfig({ ...IDP, IDP_SCOPE: 'openid profile groups' }).identityProvider?.scope).toBe(
        'openid profile groups',
      );
    });

    it('refuses LOCAL_PASSWORDS=false without a provider: nobody could sign in', () => {
      expect(problems({ LOCAL_PASSWORDS: 'false' })).toEqual([
        expect.stringMatching(/^LOCAL_PASSWORDS: false needs IDP_ISSUER/),
      ]);
      expect(loadConfig({ ...IDP, LOCAL_PASSWORDS: 'false' }).localPasswords).toBe(false);
    });

    it('never echoes the client secret, and names the provider in the summary', () => {
      const p = problems({ ...IDP, IDP_CLIENT_SECRET: 'x'.repeat(3000) });
      expect(p).toEqual([expect.stringMatching(/^IDP_CLIENT_SECRET=\(hidden\)/)]);
      const text = describeConfig(loadConfig({ ...IDP, LOCAL_PASSWORDS: 'false' }), 'PGlite').join('\n');
      expect(text).toContain(IDP.IDP_ISSUER);
      expect(text).toContain('passwords     off');
      expect(text).not.toContain(IDP.IDP_CLIENT_SECRET);
    });
  });
});
