/*
 * The body of POST /ehr-api/launches (CONTRACT §3.5), checked before anything is written.
 * - every refusal is a 400 naming the field (`user.id`, `resources[3]`, …)
 * - the patient's chart data is checked like the import's (supported type, FHIR id, JSON object)
 *   and each of `resources` must sit in that patient's compartment: an EHR can file data into the
 *   chart it launches for, and no other
 * - ids are required: the EHR's own ids make a second launch with the same chart change nothing
 */
import type { Patient, Resource } from '@medplum/fhirtypes';
import { z } from 'zod';
import { InvalidResourceError, validate } from '../fhir/resource-rules.ts';
import { compartmentOf, ID_PATTERN } from '../fhir/resource-types.ts';
import { parseInput, ValidationError } from '../http/errors.ts';
import { ACTION_PATTERN, SITE_PATTERN } from '../launch/launch-url.ts';

/** Most chart entries one launch may carry; a bigger chart belongs in the admin import. */
export const MAX_RESOURCES = 2000;

// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

const text = (what: string, max: number) =>
  z
    .string({ message: `${what} must be a string` })
    .trim()
    .min(1, { message: `${what} must not be empty` })
    .max(max, { message: `${what} is longer than ${max} characters` })
    .refine((v) => !CONTROL.test(v), { message: `${what} must not hold control characters` });

const userSchema = z.strictObject(
  {
    id: text('user.id', 200),
    given_name: text('user.given_name', 200).optional(),
    family_name: text('user.family_name', 200).optional(),
    name: text('user.name', 400).optional(),
    email: z.email({ message: 'user.email must be an e-mail address' }).max(320).optional(),
    identifiers: z
      .array(
        z.strictObject({ system: text('identifier system', 2000), value: text('identifier value', 500) }),
        {
          message: 'user.identifiers must be a list of { system, value }',
        },
      )
      .max(20)
      .optional(),
  },
  { message: 'user must be an object with the EHR user id: { "id": … }' },
);

const bodySchema = z.strictObject({
  site: z.string({ message: 'site must be an Ocean site number (text)' }).regex(SITE_PATTERN, {
    message: 'site must be 1–64 letters, digits, "_" or "-"',
  }),
  action: z.string({ message: 'action must be an Ocean action (text)' }).regex(ACTION_PATTERN, {
    message: 'action must start with a letter: letters, digits, "_", "." or "-", up to 64',
  }),
  client_id: z.string({ message: 'client_id must be a string' }).min(1).max(200).optional(),
  user: userSchema,
  patient: z
    .strictObject(
      { id: z.unknown().optional(), resource: z.unknown().optional() },
      { message: 'patient must be { "id": … } or { "resource": Patient }' },
    )
    .optional(),
  resources: z
    .array(z.unknown(), { message: 'resources must be a list of FHIR resources' })
    .max(MAX_RESOURCES, { message: `resources may hold at most ${MAX_RESOURCES} entries` })
    .optional(),
});

export interface LaunchUser {
  id: string;
  givenName?: string;
  familyName?: string;
  email?: string;
  identifiers?: { system: string; value: string }[];
}

export interface LaunchRequest {
  site: string;
  action: string;
  clientId?: string;
  user: LaunchUser;
  /** The patient in context: stored already (`id`) or sent now (`resource`); none for sign-on only. */
  patient?: { id: string; resource?: Patient };
  /** Chart entries to store with the launch, each in the patient's compartment. */
  resources: Resource[];
}

/** "Ada Lovelace" → given "Ada", family "Lovelace"; one word is a family name. */
function splitName(name: string): { given?: string; family: string } {
  const words = name.split(/\s+/);
  const family = words.pop()!;
  return words.length > 0 ? { given: words.join(' '), family } : { family };
}

/** Names the entry in a resource's refusal: `resources[3]: …`. */
const refused = (path: string, message: string) => new ValidationError([{ path, message }]);

function checkedResource(value: unknown, path: string): Resource & { id: string } {
  try {
    validate(value);
  } catch (err) {
    if (err instanceof InvalidResourceError) throw refused(path, err.message);
    throw err;
  }
  if (typeof value.id !== 'string') throw refused(path, "id is required: the EHR's own id of this resource");
  return value as Resource & { id: string };
}

export function parseLaunchRequest(input: unknown): LaunchRequest {
  const v = parseInput(bodySchema, input);
  const named = v.user.name ? splitName(v.user.name) : undefined;
  const user: LaunchUser = {
    id: v.user.id,
    ...((v.user.given_name ?? named?.given) ? { givenName: v.user.given_name ?? named?.given } : {}),
    ...((v.user.family_name ?? named?.family) ? { familyName: v.user.family_name ?? named?.family } : {}),
    ...(v.user.email ? { email: v.user.email } : {}),
    ...(v.user.identifiers ? { identifiers: v.user.identifiers } : {}),
  };

  let patient: LaunchRequest['patient'];
  if (v.patient) {
    const { id, resource } = v.patient;
    if ((id === undefined) === (resource === undefined)) {
      throw refused(
        'patient',
        'give either "id" (a stored patient) or "resource" (a Patient), not both or neither',
      );
    }
    if (resource !== undefined) {
      const p = checkedResource(resource, 'patient.resource');
      if (p.resourceType !== 'Patient') throw refused('patient.resource', 'must be a Patient');
      patient = { id: p.id, resource: p as Patient & { id: string } };
    } else if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw refused('patient.id', 'must be a FHIR id (1–64 letters, digits, "-" or ".")');
    } else {
      patient = { id };
    }
  }

  const resources: Resource[] = [];
  if (v.resources?.length) {
    if (!patient) throw refused('resources', 'chart entries need a patient: send "patient" too');
    const seen = new Set<string>();
    v.resources.forEach((value, i) => {
      const path = `resources[${i}]`;
      const r = checkedResource(value, path);
      if (r.resourceType === 'Patient') throw refused(path, 'the patient goes in "patient.resource"');
      if (compartmentOf(r) !== patient.id) {
        throw refused(
          path,
          `${r.resourceType}/${r.id} does not belong to patient ${patient.id} (its subject or patient must reference Patient/${patient.id})`,
        );
      }
      const key = `${r.resourceType}/${r.id}`;
      if (seen.has(key)) throw refused(path, `${key} is given twice`);
      seen.add(key);
      resources.push(r);
    });
  }
  return {
    site: v.site,
    action: v.action,
    ...(v.client_id ? { clientId: v.client_id } : {}),
    user,
    ...(patient ? { patient } : {}),
    resources,
  };
}
