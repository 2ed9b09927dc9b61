/*
 * The fhirUser claim (SMART App Launch 2.2 §"fhirUser"): the absolute URL of the user's FHIR
 * resource — here always a Practitioner under our FHIR base. Used by the id_token claims, the
 * access token and introspection, so all of them name one URL.
 */
import type { Config } from '../config.ts';

export const fhirUserUrl = (config: Pick<Config, 'fhirBaseUrl'>, practitionerId: string): string =>
  `${config.fhirBaseUrl}/Practitioner/${encodeURIComponent(practitionerId)}`;
