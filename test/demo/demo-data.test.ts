import type { Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listClients } from '../../src/clients/clients.ts';
import { DEMO_PATIENT_COUNT, DEMO_USERS, loadDemoData, OCEAN_TEST_LAUNCH_URL } from '../../src/demo/index.ts';
import { luhnCheckDigit } from '../../src/demo/patients.ts';
import { simplePdf } from '../../src/demo/pdf.ts';
import { readResource } from '../../src/fhir/repository.ts';
import { decryptSek, getSite } from '../../src/sites/sites.ts';
import { verifyPassword } from '../../src/users/users.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const HCN_SYSTEM = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';

describe('demo data', () => {
  let t: TestDatabase;
  let s: TestServer;

  beforeAll(async () => {
    t = await createTestDatabase();
    s = await startTestServer(t.db, { DEMO_DATA: 'true' });
  });
  afterAll(async () => {
    await s?.stop();
    await t?.drop();
  });

  const count = async (sql: string, params: unknown[] = []) =>
    Number((await t.db.query<{ n: unknown }>(sql, params)).rows[0]!.n);

  it('creates two clinicians and one administrator, each with a Practitioner and a CPSO licence', async () => {
    const users = await t.db.query<{ username: string; roles: string[]; practitioner_id: string }>(
      'SELECT username, roles, practitioner_id FROM users ORDER BY username',
    );
    expect(users.rows.map((u) => u.username).sort()).toEqual(DEMO_USERS.map((u) => u.username).sort());
    expect(users.rows.filter((u) => u.roles.includes('admin'))).toHaveLength(1);
    for (const u of users.rows) {
      const p = await readResource(t.db, 'Practitioner', u.practitioner_id);
      expect(p?.resource.name?.[0]?.family).toBeTruthy();
      expect(p?.resource.telecom?.[0]?.system).toBe('email');
      expect(p?.resource.identifier?.[0]?.system).toBe(
        'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician',
      );
    }
    for (const u of DEMO_USERS) expect(await verifyPassword(s.ctx, u.username, u.password)).toBeDefined();
  });

  it('creates at least 25 Ontario patients with a valid health card and both version-code extensions', async () => {
    const rows = await t.db.query<{ resource: Patient }>(
      "SELECT resource FROM fhir_resources WHERE resource_type = 'Patient' AND NOT deleted",
    );
    expect(rows.rows.length).toBe(DEMO_PATIENT_COUNT);
    expect(rows.rows.length).toBeGreaterThanOrEqual(25);
    const cities = new Set<string>();
    const hcns = new Set<string>();
    for (const { resource: p } of rows.rows) {
      const id = p.identifier!.find((i) => i.system === HCN_SYSTEM)!;
      expect(id.value).toMatch(/^\d{10}$/);
      expect(Number(id.value![9])).toBe(luhnCheckDigit(id.value!.slice(0, 9)));
      hcns.add(id.value!);
      expect(id.type?.coding?.[0]).toMatchObject({
        system: 'http://terminology.hl7.org/CodeSystem/v2-0203',
        code: 'JHN',
      });
      const ext = Object.fromEntries((id.extension ?? []).map((e) => [e.url, e.valueString]));
      const version =
        ext['http://ehealthontario.ca/fhir/StructureDefinition/ext-id-health-card-version-code'];
      expect(version).toMatch(/^[A-Z]{2}$/);
      expect(ext['http://hl7.org/fhir/ca/baseline/StructureDefinition/ext-identifierversion']).toBe(version);
      expect(['male', 'female', 'other']).toContain(p.gender);
      expect(p.birthDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(p.address?.[0]).toMatchObject({ state: 'ON', country: 'CA' });
      expect(p.address?.[0]?.postalCode).toMatch(/^[A-Z]\d[A-Z] \d[A-Z]\d$/);
      cities.add(p.address![0]!.city!);
      expect(p.telecom?.some((c) => c.system === 'phone')).toBe(true);
      expect(p.telecom?.some((c) => c.system === 'email')).toBe(true);
    }
    expect(hcns.size).toBe(rows.rows.length);
    expect(cities.size).toBeGreaterThanOrEqual(8);
    expect(
      await count(
        'SELECT count(*) AS n FROM fhir_resources WHERE resource->\'telecom\' @> \'[{"system":"fax"}]\'',
      ),
    ).toBeGreaterThan(0);
  });

  it('gives the charts allergies, medications, conditions, observations and a PDF document each', async () => {
    for (const type of ['AllergyIntolerance', 'MedicationStatement', 'Condition', 'Observation']) {
      expect(
        await count('SELECT count(*) AS n FROM fhir_resources WHERE resource_type = $1', [type]),
      ).toBeGreaterThan(10);
    }
    expect(
      await count("SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'DocumentReference'"),
    ).toBe(DEMO_PATIENT_COUNT);
    const doc = await t.db.query<{ data: string; compartment_patient: string }>(
      `SELECT resource #>> '{content,0,attachment,data}' AS data, compartment_patient
         FROM fhir_resources WHERE resource_type = 'DocumentReference' LIMIT 1`,
    );
    expect(Buffer.from(doc.rows[0]!.data, 'base64').subarray(0, 5).toString()).toBe('%PDF-');
    expect(doc.rows[0]!.compartment_patient).toBeTruthy();
  });

  it('registers an Ocean client for the test environment with a demo site and three actions', async () => {
    const clients = await listClients(s.ctx);
    expect(clients).toHaveLength(1);
    expect(clients[0]).toMatchObject({
      launch_url: OCEAN_TEST_LAUNCH_URL,
      token_endpoint_auth_method: 'none',
    });
    const site = await getSite(s.ctx, '1234');
    expect(site.actions.map((a) => a.action)).toEqual(['viewMap', 'dashboard', 'referDirect']);
    expect(decryptSek(s.ctx, '1234', site.sekEncrypted).length).toBeGreaterThanOrEqual(32);
  });

  it('prints the URL and demo credentials, never the SEK', async () => {
    const banner = s.capabilities.flatMap((c) => c.banner?.() ?? []).join('\n');
    expect(banner).toContain(`${s.url}/login`);
    for (const u of DEMO_USERS) {
      expect(banner).toContain(u.username);
      expect(banner).toContain(u.password);
    }
    const site = await getSite(s.ctx, '1234');
    expect(banner).not.toContain(decryptSek(s.ctx, '1234', site.sekEncrypted));
  });

  it('prints no demo password when local passwords are off', async () => {
    const banner = (await loadDemoData({ ...s.ctx, config: { ...s.ctx.config, localPasswords: false } }))
      .bannerLines()
      .join('\n');
    for (const u of DEMO_USERS) {
      expect(banner).toContain(u.username);
      expect(banner).not.toContain(u.password);
    }
  });

  it('loads nothing a second time (idempotent)', async () => {
    const before = await count('SELECT count(*) AS n FROM fhir_resources');
    const again = await loadDemoData(s.ctx);
    expect(again.loaded).toBe(false);
    expect(await count('SELECT count(*) AS n FROM fhir_resources')).toBe(before);
    expect(await count('SELECT count(*) AS n FROM users')).toBe(DEMO_USERS.length);
    expect(await count('SELECT count(*) AS n FROM clients')).toBe(1);
  });

  it('loads one copy when two instances start on one empty database at once', async () => {
    const t2 = await createTestDatabase();
    const a = await startTestServer(t2.db);
    try {
      const other = await t2.connectAnother();
      const results = await Promise.all([loadDemoData(a.ctx), loadDemoData({ ...a.ctx, db: other })]);
      expect(results.filter((r) => r.loaded)).toHaveLength(1);
      const n = async (sql: string) => Number((await t2.db.query<{ n: unknown }>(sql)).rows[0]!.n);
      expect(await n('SELECT count(*) AS n FROM users')).toBe(DEMO_USERS.length);
      expect(await n("SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Patient'")).toBe(
        DEMO_PATIENT_COUNT,
      );
      expect(await n('SELECT count(*) AS n FROM clients')).toBe(1);
    } finally {
      await a.stop();
      await t2.drop();
    }
  });

  it('loads nothing into a database that already has users', async () => {
    const t2 = await createTestDatabase();
    try {
      const plain = await startTestServer(t2.db);
      await t2.db.query(
        "INSERT INTO users (id, username, password_hash, practitioner_id, given_name, family_name) VALUES ('u1', 'someone', 'x', 'p1', 'S', 'O')",
      );
      const result = await loadDemoData(plain.ctx);
      expect(result.loaded).toBe(false);
      expect(result.bannerLines()).toEqual([]);
      expect(
        Number(
          (
            await t2.db.query<{ n: unknown }>(
              "SELECT count(*) AS n FROM fhir_resources WHERE resource_type = 'Patient'",
            )
          ).rows[0]!.n,
        ),
      ).toBe(0);
      await plain.stop();
    } finally {
      await t2.drop();
    }
  });
});

describe('simplePdf', () => {
  it('writes a cross-reference table whose offsets point at the objects', () => {
    const pdf = simplePdf('Title (with parens)', ['line one', 'Ünïcödé ✓']).toString('latin1');
    const xrefAt = Number(/startxref\n(\d+)/.exec(pdf)![1]);
    expect(pdf.slice(xrefAt, xrefAt + 4)).toBe('xref');
    const offsets = [...pdf.slice(xrefAt).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
    expect(offsets).toHaveLength(5);
    for (const [i, o] of offsets.entries()) {
      expect(pdf.slice(o, o + `${i + 1} 0 obj`.length)).toBe(`${i + 1} 0 obj`);
    }
    expect(pdf).toContain('Title \\(with parens\\)');
  });
});
