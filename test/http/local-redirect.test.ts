import { describe, expect, it } from 'vitest';
import { localPath, localRedirectTarget } from '../../src/http/local-redirect.ts';

describe('local redirects (one helper for every user-supplied redirect)', () => {
  it.each([
    // The probe's findings: the raw string passes a "starts with //" check, the normalised one does not.
    '/.//evil.example',
    '/..//x',
    '/%2e//x',
    '/%2E%2E//x',
    '/a/..//x/y?z=1',
    '/a/%2e%2e/%2e%2e//x',
    '/././/evil.example/login',
    // Other hosts, schemes and protocol-relative forms.
    '//',
    '/.//',
    '//evil.example',
    '///evil.example',
    'https://evil.example/',
    'https:evil.example',
    'http:/evil.example',
    'javascript:alert(1)',
    'data:text/html,x',
    'evil.example',
    ' /patients',
    // Backslashes: browsers read them as slashes.
    '/\\evil.example',
    '\\\\evil.example',
    '/\\/evil.example',
    // Encoded slashes and backslashes in the path: some layer may decode them into a second slash.
    '/%2f%2fevil.example',
    '/%2F/evil.example',
    '/%5cevil.example',
    '/%5C%5Cevil.example',
    // Tabs, newlines and other control characters: URL parsers drop them silently.
    '/\t/evil.example',
    '/\n/evil.example',
    '/\r\n/evil.example',
    '/pa\ttients',
    '/\u0000',
    '/\u007f',
    // Not a string, empty, oversized.
    '',
    `/${'a'.repeat(2048)}`,
  ])('refuses %j', (value) => {
    expect(localPath(value)).toBeUndefined();
    expect(localRedirectTarget(value)).toBe('/');
  });

  it.each([undefined, null, 42, ['/patients'], { toString: () => '/patients' }])(
    'refuses the non-string %j',
    (value) => {
      expect(localPath(value)).toBeUndefined();
    },
  );

  it.each([
    ['/', '/'],
    ['/patients', '/patients'],
    ['/patients?q=tremblay', '/patients?q=tremblay'],
    ['/patients?q=a%2Fb', '/patients?q=a%2Fb'],
    ['/launch?patient=p1&site=1&action=viewMap', '/launch?patient=p1&site=1&action=viewMap'],
    ['/interaction/abc-123', '/interaction/abc-123'],
    ['/patients/../admin', '/admin'],
    ['/patients/./p1', '/patients/p1'],
    ['/a b', '/a%20b'],
    ['/@evil.example', '/@evil.example'],
    ['/?returnTo=//evil.example', '/?returnTo=//evil.example'],
    ['/patients#top', '/patients#top'],
  ])('keeps the local path %j as %j, already resolved', (value, expected) => {
    expect(localPath(value)).toBe(expected);
    // The answer is a fixed point: a browser resolving it again lands on the same path of our origin.
    const again = new URL(expected, 'https://ehr.example.org/');
    expect(again.origin).toBe('https://ehr.example.org');
    expect(`${again.pathname}${again.search}${again.hash}`).toBe(expected);
    expect(localPath(expected)).toBe(expected);
  });

  it('sends everything else home, or to the home the caller names', () => {
    expect(localRedirectTarget('/..//x', '/patients')).toBe('/patients');
    expect(localRedirectTarget('/patients?q=x', '/home')).toBe('/patients?q=x');
  });
});
