import type { Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PATIENT_COUNT } from '../../src/demo/index.ts';
import { parseSearch } from '../../src/ehr/screens.ts';
import { putResource } from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { BrowserSession } from './browser-session.ts';

const HCN_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';

describe('EHR screens (demo data)', () => {
  let t: TestDatabase;
  let s: TestServer;
  let b: BrowserSession;
  let patients: Patient[];

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, { DEMO_DATA: 'true' });
    b = new BrowserSession(s.url);
    expect((await b.signIn('dr.patel', 'demo-clinician-1')).status).toBe(303);
    patients = (
      await t.db.query<{ resource: Patient }>(
        "SELECT resource FROM fhir_resources WHERE resource_type = 'Patient'",
      )
    ).rows.map((r) => r.resource);
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const rowsOf = (html: string) =>
    [...html.matchAll(/class="patient-link" href="\/patients\/([^"]+)"/g)].map((m) => m[1]);

  it('lists patients 20 to a page, sorted by family name, each linking to the chart', async () => {
    const res = await b.get('/patients');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    expect(rowsOf(html)).toHaveLength(20);
    expect(html).toContain(`Showing 1–20 of ${DEMO_PATIENT_COUNT} patients`);
    expect(html).toContain('href="/patients?page=2"');
    const page2 = await (await b.get('/patients?page=2')).text();
    expect(rowsOf(page2)).toHaveLength(DEMO_PATIENT_COUNT - 20);
    expect(new Set([...rowsOf(html), ...rowsOf(page2)]).size).toBe(DEMO_PATIENT_COUNT);
    const names = [...html.matchAll(/class="patient-link"[^>]*>([^<]+)</g)].map((m) =>
      m[1]!.split(',')[0]!.toLowerCase(),
    );
    expect(names).toEqual([...names].sort((x, y) => x.localeCompare(y)));
  });

  it('searches by name, case and accents ignored', async () => {
    const html = await (await b.get('/patients?q=TREMBLAY')).text();
    const expected = patients.filter((p) => p.name?.[0]?.family === 'Tremblay').map((p) => p.id);
    expect(rowsOf(html).sort()).toEqual(expected.sort());
    const marie = patients.filter(
      (p) => p.name?.[0]?.family === 'Tremblay' && p.name[0].given?.[0] === 'Marie',
    );
    for (const q of ['Tremblay, Marie', 'marie trem']) {
      expect(rowsOf(await (await b.get(`/patients?q=${encodeURIComponent(q)}`)).text())).toEqual(
        marie.map((p) => p.id),
      );
    }
    const levesque = await (await b.get('/patients?q=levesque')).text();
    expect(rowsOf(levesque)).toHaveLength(1);
    expect(levesque).toContain('Lévesque');
  });

  it('searches by health card number, with or without spaces and version code', async () => {
    const p = patients[3]!;
    const id = p.identifier!.find((i) => i.system === HCN_SYSTEM)!;
    const hcn = id.value!;
    const vc = id.extension![0]!.valueString!;
    for (const q of [
      hcn,
      `${hcn.slice(0, 4)} ${hcn.slice(4, 7)} ${hcn.slice(7)}`,
      `${hcn.slice(0, 4)}-${hcn.slice(4, 7)}-${hcn.slice(7)}-${vc}`,
    ]) {
      const html = await (await b.get(`/patients?q=${encodeURIComponent(q)}`)).text();
      expect(rowsOf(html)).toEqual([p.id]);
    }
  });

  it('searches by date of birth', async () => {
    const p = patients[5]!;
    const expected = patients.filter((x) => x.birthDate === p.birthDate).map((x) => x.id);
    expect(rowsOf(await (await b.get(`/patients?birthdate=${p.birthDate}`)).text()).sort()).toEqual(
      expected.sort(),
    );
    expect(rowsOf(await (await b.get(`/patients?q=${p.birthDate}`)).text()).sort()).toEqual(expected.sort());
  });

  it('says so when nothing matches', async () => {
    const html = await (await b.get('/patients?q=zzzznotaname')).text();
    expect(rowsOf(html)).toHaveLength(0);
    expect(html).toContain('No patient matches this search');
  });

  it.each([
    '/patients?page=0',
    '/patients?page=abc',
    '/patients?birthdate=1990-13-40',
    `/patients?q=${'x'.repeat(101)}`,
  ])('answers %s with a 400 page', async (path) => {
    const res = await b.get(path);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('shows the chart: demographics, health card with version code, contacts, clinical lists and Ocean buttons', async () => {
    const p = patients.find((x) => x.telecom?.some((c) => c.system === 'fax'))!;
    const res = await b.get(`/patients/${p.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const html = await res.text();
    const id = p.identifier!.find((i) => i.system === HCN_SYSTEM)!;
    const hcn = id.value!;
    expect(html).toContain(
      `${hcn.slice(0, 4)}-${hcn.slice(4, 7)}-${hcn.slice(7)} ${id.extension![0]!.valueString}`,
    );
    expect(html).toContain(p.name![0]!.family!.replace(/'/g, '&#39;'));
    expect(html).toContain(p.address![0]!.city!);
    expect(html).toContain('Fax');
    for (const section of ['Allergies', 'Medications', 'Conditions', 'Recent observations', 'Documents']) {
      expect(html).toContain(`>${section}</h2>`);
    }
    expect(html).toContain('Consultation letter');
    for (const [action, label] of [
      ['viewMap', 'Ocean: Health Map'],
      ['dashboard', 'Ocean: Patient dashboard'],
      ['referDirect', 'Ocean: Refer'],
    ]) {
      const href = `/launch?patient=${p.id}&amp;site=1234&amp;action=${action}`;
      const button = new RegExp(
        `<a class="button button-ocean" href="${href.replace(/[?]/g, '\\?')}" target="_blank" rel="noopener"[^>]*>${label}</a>`,
      );
      expect(html).toMatch(button);
    }
    const audit = await t.db.query(
      "SELECT 1 FROM audit_events WHERE action = 'ehr.chart.view' AND patient_id = $1",
      [p.id],
    );
    expect(audit.rowCount).toBeGreaterThan(0);
  });

  it('shows the newest observations of a long chart, whatever order they were stored in', async () => {
    const id = 'long-chart';
    await putResource(t.db, {
      resourceType: 'Patient',
      id,
      name: [{ family: 'Longchart', given: ['Lena'] }],
    });
    // The newest first, then 249 older ones: storage order is the opposite of clinical order.
    const obs = (n: number, date: string) => ({
      resourceType: 'Observation' as const,
      id: `${id}-obs-${n}`,
      status: 'final' as const,
      code: { text: n === 0 ? 'Newest glucose' : `Old reading ${n}` },
      subject: { reference: `Patient/${id}` },
      effectiveDateTime: date,
      valueQuantity: { value: n, unit: 'mmol/L' },
    });
    await t.db.transaction(async (tx) => {
      await putResource(tx, obs(0, '2026-01-15T09:00:00Z'));
      for (let n = 1; n < 250; n++) {
        await putResource(
          tx,
          obs(n, `20${String(10 + Math.floor(n / 20)).padStart(2, '0')}-01-01T00:00:00Z`),
        );
      }
    });
    const html = await (await b.get(`/patients/${id}`)).text();
    expect(html).toContain('Newest glucose');
    expect(html).toContain('The 15 most recent of 250 shown.');
    const rows = [...html.matchAll(/<tr><td class="nowrap">([^<]+)<\/td><td>([^<]+)<\/td>/g)];
    expect(rows).toHaveLength(15);
    expect(rows[0]![2]).toBe('Newest glucose');
  });

  it('serves a chart document as a PDF from its own chart only', async () => {
    const p = patients[0]!;
    const other = patients[1]!;
    const html = await (await b.get(`/patients/${p.id}`)).text();
    const href = /href="(\/patients\/[^"]+\/documents\/[^"]+)"/.exec(html)![1]!;
    const res = await b.get(href);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/pdf');
    expect(
      Buffer.from(await res.arrayBuffer())
        .subarray(0, 5)
        .toString(),
    ).toBe('%PDF-');
    const docId = href.split('/').at(-1);
    expect((await b.get(`/patients/${other.id}/documents/${docId}`)).status).toBe(404);
  });

  it('answers an unknown chart with a friendly 404 page', async () => {
    const res = await b.get('/patients/no-such-patient');
    expect(res.status).toBe(404);
    const html = await res.text();
    expect(html).toContain('There is no patient with that chart number');
    expect(html).toContain('Back to the patient list');
  });

  it('keeps the screens for signed-in users', async () => {
    const anon = new BrowserSession(s.url);
    for (const path of ['/patients', `/patients/${patients[0]!.id}`]) {
      const res = await anon.get(path);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toMatch(/^\/login\?returnTo=/);
    }
  });
});

describe('parseSearch', () => {
  it('tells names, health card numbers and dates apart', () => {
    expect(parseSearch({ q: 'Tremblay, Marie' })).toMatchObject({ query: 'Tremblay, Marie' });
    expect(parseSearch({ q: '1234 567 890 AB' })).toMatchObject({ hcn: '1234567890' });
    expect(parseSearch({ q: '1234567890' })).toMatchObject({ hcn: '1234567890' });
    expect(parseSearch({ q: '1980-02-29' })).toMatchObject({ birthDate: '1980-02-29' });
    expect(parseSearch({ q: '', page: '3' })).toMatchObject({ page: 3 });
  });
});
