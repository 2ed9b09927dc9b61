/*
 * read and vread of one resource (https://hl7.org/fhir/R4/http.html#read), as pipeline interactions.
 * - one index lookup on (resource_type, id); the stored text is sent as is
 * - a resource the token may not see answers exactly like an absent one (404)
 * - a deleted resource answers 410 (only to a token that could have seen it)
 * - read checks that the token's user is still active in the same round trip
 * - vread judges the version itself: visible only if that version was filed in the token's
 *   compartment and passes its query restrictions, and the resource is visible now
 */
import type { Request, Response } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError } from '../http/errors.ts';
import { canSee, type Principal } from './access.ts';
import { checkId, notFoundAs, sendStored } from './fhir-http.ts';
import type { LiveTokenSql } from './live-token.ts';
import type { Interaction } from './pipeline.ts';
import { type RawResource, readRaw, readRawAsUser, readVersion } from './reads.ts';

/** Whether the token may see this stored version (its own compartment, its own body). */
export const sees = (p: Principal, type: string, id: string, v: RawResource) =>
  canSee(p, 'r', type, id, v.compartment, () => JSON.parse(v.body));

const gone = (what: string) => new HttpError(410, 'gone', what, {}, 'deleted');

const typeAndId = (req: Request) => ({
  type: req.params.type as string,
  id: checkId(req.params.id as string),
});

/**
 * The answer of a read: the stored text as it is. A function returned, not one written into the
 * outcome's `send` (which the build would name on every read: scripts/build.mjs, keepNames).
 */
const sender = (raw: RawResource) => (rq: Request, res: Response) => sendStored(rq, res, raw);

/** `liveTokenSql`: the read asks whether the token still counts inside its own query (./live-token.ts). */
export function readInteraction(ctx: AppContext, liveTokenSql: LiveTokenSql): Interaction {
  return {
    action: 'fhir.read',
    interaction: 'r',
    target(req) {
      const { type, id } = typeAndId(req);
      return { type, entity: `${type}/${id}` };
    },
    async perform(req, { principal, type }) {
      const id = req.params.id as string;
      const { raw, live } = await readRawAsUser(ctx.db, type, id, principal, liveTokenSql);
      if (!raw || !sees(principal, type, id, raw)) return { live, refusal: notFoundAs(type, id) };
      if (raw.deleted)
        return { live, patientId: raw.compartment, refusal: gone(`${type}/${id} has been deleted`) };
      return { live, patientId: raw.compartment, send: sender(raw) };
    },
  };
}

export function vreadInteraction(ctx: AppContext): Interaction {
  return {
    action: 'fhir.vread',
    interaction: 'r',
    target(req) {
      const { type, id } = typeAndId(req);
      return { type, entity: `${type}/${id}/_history/${(req.params.vid as string).slice(0, 20)}` };
    },
    async perform(req, { principal, type }) {
      const id = req.params.id as string;
      const vid = req.params.vid as string;
      const [current, version] = /^[1-9]\d{0,8}$/.test(vid)
        ? await Promise.all([readRaw(ctx.db, type, id), readVersion(ctx.db, type, id, Number(vid))])
        : [undefined, undefined];
      if (!current || !version || !sees(principal, type, id, current) || !sees(principal, type, id, version))
        return { refusal: notFoundAs(type, id, vid) };
      if (version.deleted)
        return {
          patientId: version.compartment,
          refusal: gone(`${type}/${id} version ${vid} is a deletion`),
        };
      return { patientId: version.compartment, send: sender(version) };
    },
  };
}
