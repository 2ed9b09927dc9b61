/*
 * GET /fhir/metadata: the CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html),
 * public, CORS from any origin.
 * - fhirVersion 4.0.1, JSON only, every type held with its interactions and search parameters,
 *   Patient $everything with the order of its pages documented
 * - rest.security: the SMART-on-FHIR service coding and the `oauth-uris` extension
 *   (https://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html#declaring-support-for-oauth2-endpoints)
 *   whose URLs come from src/smart/configuration.ts, the document the authorization server publishes
 */
import type { AppContext } from '../context.ts';
import { smartConfiguration } from '../smart/configuration.ts';
import { EVERYTHING_FIRST } from './compartment-listing.ts';
import { PAGE_BYTES } from './page-budget.ts';
import { isCompartmentType, SUPPORTED_TYPES } from './resource-types.ts';
import { INDEXED_TYPES } from './search-index.ts';

interface SmartEndpoints {
  authorization_endpoint?: string;
  token_endpoint?: string;
  introspection_endpoint?: string;
  revocation_endpoint?: string;
  registration_endpoint?: string;
  management_endpoint?: string;
}

const SOFTWARE_VERSION = '0.1.0';

const param = (name: string, type: string, documentation: string) => ({ name, type, documentation });

const PATIENT_PARAMS = [
  param('_id', 'token', 'logical id'),
  param('identifier', 'token', 'system|value, |value, system| or value'),
  param(
    'name',
    'string',
    'any part of any name (starts-with, case and accent insensitive; :exact, :contains)',
  ),
  param('family', 'string', 'family name'),
  param('given', 'string', 'given name'),
  param('birthdate', 'date', 'eq, ne, lt, gt, le, ge; YYYY, YYYY-MM or YYYY-MM-DD'),
  param('gender', 'token', 'male | female | other | unknown'),
];
/** Patient $everything, with the order of its pages (a client that reads one page relies on it). */
const EVERYTHING = {
  name: 'everything',
  definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
  documentation:
    `A searchset of the Patient and its compartment. Order: the Patient (first page only), then ${EVERYTHING_FIRST.join(', ')} ` +
    '— each type in turn — then every other type; within a type, the order the resources were first stored in. ' +
    'So the first page (no _count: up to 1000 entries) holds what a referral is filled from, whatever order the chart was loaded in. ' +
    `A page holds at most ${PAGE_BYTES / 2 ** 20} MiB of resource text (at least one resource): a chart of large documents pages by size. ` +
    '_count (default and max 1000), _since, _type; next links carry a keyset cursor: paging returns every resource exactly once ' +
    'while the chart changes (resources created after the first page wait for the next $everything).',
};

const PRACTITIONER_PARAMS = PATIENT_PARAMS.filter((p) => !['birthdate', 'gender'].includes(p.name));

function resourceEntry(type: string) {
  const searchParam =
    type === 'Patient'
      ? PATIENT_PARAMS
      : type === 'Practitioner'
        ? PRACTITIONER_PARAMS
        : INDEXED_TYPES.has(type)
          ? [param('_id', 'token', 'logical id'), PATIENT_PARAMS[1]!]
          : isCompartmentType(type)
            ? [
                param('_id', 'token', 'logical id'),
                param('patient', 'reference', 'the Patient whose compartment holds the resource'),
              ]
            : [param('_id', 'token', 'logical id')];
  return {
    type,
    interaction: [{ code: 'read' }, { code: 'vread' }, { code: 'history-instance' }, { code: 'search-type' }],
    versioning: 'versioned',
    readHistory: true,
    updateCreate: false,
    conditionalRead: 'modified-since',
    searchParam,
    ...(type === 'Patient'
      ? {
          operation: [EVERYTHING],
        }
      : {}),
  };
}

export function capabilityStatement(ctx: AppContext) {
  // the authorization server's own smart-configuration: the same endpoints, by construction
  const e: SmartEndpoints = smartConfiguration(ctx.config);
  return function build() {
    const uris = (
      [
        ['authorize', e.authorization_endpoint],
        ['token', e.token_endpoint],
        ['introspect', e.introspection_endpoint],
        ['revoke', e.revocation_endpoint],
        ['register', e.registration_endpoint],
        ['manage', e.management_endpoint],
      ] as const
    )
      .filter(([, url]) => typeof url === 'string' && url.length > 0)
      .map(([url, valueUri]) => ({ url, valueUri }));
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString().slice(0, 10),
      publisher: 'SMART on FHIR launch server for Ocean',
      kind: 'instance',
      software: { name: 'smart-ocean-launch', version: SOFTWARE_VERSION },
      implementation: { description: 'FHIR R4 API of the EHR', url: ctx.config.fhirBaseUrl },
      fhirVersion: '4.0.1',
      format: ['application/fhir+json', 'json'],
      rest: [
        {
          mode: 'server',
          security: {
            cors: true,
            service: [
              {
                coding: [
                  {
                    system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                    code: 'SMART-on-FHIR',
                    display: 'SMART-on-FHIR',
                  },
                ],
                text: 'OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)',
              },
            ],
            extension: [
              {
                url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                extension: uris,
              },
            ],
          },
          resource: SUPPORTED_TYPES.map(resourceEntry),
          operation: [
            EVERYTHING,
            // Ocean's eReferral messages (src/referrals/, CONTRACT §3.7)
            {
              name: 'process-message',
              definition: 'http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message',
            },
          ],
        },
      ],
    };
  };
}
