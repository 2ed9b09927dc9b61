import type { Observation, Patient } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { migrate } from '../../src/db/migrate.ts';
import {
  createResource,
  deleteResource,
  InvalidResourceError,
  listCompartment,
  putResource,
  readRaw,
  readResource,
  readVersion,
  searchPatients,
} from '../../src/fhir/repository.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let t: TestDatabase;
let db: Database;

beforeAll(async () => {
  t = await createTestDatabase();
  db = t.db;
  await migrate(db);
});
afterAll(async () => t.drop());

const HCN = 'https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn';

function patient(id: string, family: string, given: string, hcn?: string): Patient {
  return {
    resourceType: 'Patient',
    id,
    name: [{ family, given: [given] }],
    gender: 'female',
    birthDate: '1980-05-17',
    identifier: hcn ? [{ system: HCN, value: hcn }] : undefined,
  };
}

const obs = (id: string, patientId: string, code = 'x'): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { text: code },
  subject: { reference: `Patient/${patientId}` },
});

describe('repository', () => {
  it('creates, updates with a version bump, keeps history and ignores an identical body', async () => {
    const first = await putResource(db, patient('p1', 'Núñez', 'José', '1234 567 890'));
    expect(first.outcome).toBe('created');
    expect(first.stored.resource.meta?.versionId).toBe('1');
    expect(first.stored.compartment).toBe('p1');

    const same = await putResource(db, patient('p1', 'Núñez', 'José', '1234 567 890'));
    expect(same.outcome).toBe('unchanged');
    expect(same.stored.versionId).toBe(1);

    const changed = await putResource(db, {
      ...patient('p1', 'Núñez', 'José', '1234 567 890'),
      gender: 'other',
    });
    expect(changed.outcome).toBe('updated');
    expect(changed.stored.versionId).toBe(2);

    const current = await readResource(db, 'Patient', 'p1');
    expect(current?.resource.gender).toBe('other');
    expect(current?.resource.meta?.versionId).toBe('2');
    const v1 = await readVersion(db, 'Patient', 'p1', 1);
    expect((v1!.resource as Patient).gender).toBe('female');
    expect(await readVersion(db, 'Patient', 'p1', 3)).toBeUndefined();
    const raw = await readRaw(db, 'Patient', 'p1');
    expect(JSON.parse(raw!.body).gender).toBe('other');
  });

  it('assigns ids on create and computes the compartment from the reference', async () => {
    const created = await createResource(db, obs('ignored', 'p1'));
    expect(created.resource.id).not.toBe('ignored');
    expect(created.compartment).toBe('p1');
    const read = await readResource(db, 'Observation', created.resource.id!);
    expect(read?.compartment).toBe('p1');
  });

  it('refuses unsupported types, bad ids and NUL characters, writing nothing', async () => {
    await expect(putResource(db, { resourceType: 'Spaceship', id: 'a' } as never)).rejects.toBeInstanceOf(
      InvalidResourceError,
    );
    await expect(putResource(db, { resourceType: 'Patient', id: 'bad id' })).rejects.toBeInstanceOf(
      InvalidResourceError,
    );
    await expect(
      putResource(db, { resourceType: 'Patient', id: 'nul', name: [{ family: 'a\u0000b' }] }),
    ).rejects.toBeInstanceOf(InvalidResourceError);
    expect(await readResource(db, 'Patient', 'nul')).toBeUndefined();
  });

  it('pages a compartment by cursor without repeats or gaps while it changes', async () => {
    await putResource(db, patient('p2', 'Smith', 'Anna'));
    for (let i = 0; i < 5; i++) await putResource(db, obs(`o2-${i}`, 'p2'));
    const page1 = await listCompartment(db, 'p2', { count: 2 });
    expect(page1.resources.map((r) => r.id)).toEqual(['o2-0', 'o2-1']);
    // changes between pages: an update of a seen resource, a new resource, a deletion of an unseen one
    await putResource(db, obs('o2-0', 'p2', 'changed'));
    await putResource(db, obs('o2-new', 'p2'));
    await deleteResource(db, 'Observation', 'o2-3');
    const page2 = await listCompartment(db, 'p2', { count: 2, cursor: page1.nextCursor });
    expect(page2.resources.map((r) => r.id)).toEqual(['o2-2', 'o2-4']);
    expect(page2.nextCursor).toBeUndefined();
    const filtered = await listCompartment(db, 'p2', { count: 10, types: ['Patient'] });
    expect(filtered.resources).toEqual([]);
  });

  it('searches the patient list by name fragment, health card and birth date', async () => {
    await putResource(db, patient('p3', 'Nunez', 'Maria', '9876543210'));
    const byName = await searchPatients(db, { query: 'nunez', count: 10, offset: 0 });
    expect(byName.patients.map((p) => p.id).sort()).toEqual(['p1', 'p3']);
    expect(byName.total).toBe(2);
    const byTwoWords = await searchPatients(db, { query: 'jos NÚÑ', count: 10, offset: 0 });
    expect(byTwoWords.patients.map((p) => p.id)).toEqual(['p1']);
    const byHcn = await searchPatients(db, { hcn: '1234-567-890', count: 10, offset: 0 });
    expect(byHcn.patients.map((p) => p.id)).toEqual(['p1']);
    const byBirth = await searchPatients(db, { birthDate: '1980-05', query: 'maria', count: 10, offset: 0 });
    expect(byBirth.patients.map((p) => p.id)).toEqual(['p3']);
    // LIKE wildcards in input are literal characters
    const none = await searchPatients(db, { birthDate: '19%', count: 10, offset: 0 });
    expect(none.total).toBe(0);
    const paged = await searchPatients(db, { count: 1, offset: 1 });
    expect(paged.patients).toHaveLength(1);
    expect(paged.total).toBe(3);
  });

  it('runs inside a caller transaction and rolls back with it', async () => {
    await expect(
      db.transaction(async (tx) => {
        await putResource(tx, patient('rolled', 'Back', 'Roll'));
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await readResource(db, 'Patient', 'rolled')).toBeUndefined();
    expect((await searchPatients(db, { query: 'roll', count: 5, offset: 0 })).total).toBe(0);
  });
});
