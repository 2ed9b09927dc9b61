/*
 * read, vread and history of one resource (https://hl7.org/fhir/R4/http.html#read).
 * - one index lookup on (resource_type, id); the stored text is sent as is
 * - a resource the token may not see answers exactly like an absent one (404)
 * - a deleted resource answers 410 (only to a token that could have seen it)
 * - a token whose user has since been deactivated is refused (401), checked in the same round trip
 */
import type { Request, Response } from 'express';
import type { AppContext } from '../context.ts';
import { HttpError, notFound } from '../http/errors.ts';
import { isActiveUser } from '../users/users.ts';
import { canSee, type Principal, typeAllowed } from './access.ts';
import { insufficientScope, unauthorized } from './access-token.ts';
import { audit, checkId, FHIR_JSON, parseCount, principalOf, sendStored } from './fhir-http.ts';
import { listHistory, readRaw, readRawAsUser, readVersion } from './repository.ts';

export const notFoundAs = (type: string, id: string) => notFound(`${type}/${id} was not found`);

export async function denyType(ctx: AppContext, req: Request, res: Response, type: string, entity: string) {
  await audit(ctx, req, principalOf(res), {
    action: 'fhir.denied',
    entity,
    outcome: 'failure',
    detail: { status: 403 },
  });
  throw insufficientScope(`the granted scopes do not allow reading ${type}`);
}

/** The token's user was deactivated (or removed) after the token was issued: the token no longer counts. */
export async function inactiveUser(ctx: AppContext, req: Request, p: Principal): Promise<never> {
  await audit(ctx, req, p, {
    action: 'fhir.denied',
    entity: req.path.split('/').slice(0, 3).join('/'),
    outcome: 'failure',
    detail: { status: 401, reason: 'user inactive' },
  });
  throw unauthorized('the user of this access token is no longer active');
}

/** For handlers that make more than one query anyway: a separate, cheap check. */
export async function assertActiveUser(ctx: AppContext, req: Request, p: Principal): Promise<void> {
  if (!(await isActiveUser(ctx.db, p.userId))) await inactiveUser(ctx, req, p);
}

export function readHandlers(ctx: AppContext) {
  const db = ctx.db;
  return {
    async read(req: Request, res: Response): Promise<void> {
      const type = req.params.type as string;
      const id = checkId(req.params.id as string);
      const p = principalOf(res);
      const entity = `${type}/${id}`;
      if (!typeAllowed(p, type, 'r')) return denyType(ctx, req, res, type, entity);
      const { raw, userActive } = await readRawAsUser(db, type, id, p.userId);
      if (!userActive) return inactiveUser(ctx, req, p);
      if (!raw || !canSee(p, 'r', type, id, raw.compartment, () => JSON.parse(raw.body))) {
        await audit(ctx, req, p, {
          action: 'fhir.read',
          entity,
          outcome: 'failure',
          detail: { status: 404 },
        });
        throw notFoundAs(type, id);
      }
      if (raw.deleted) {
        await audit(ctx, req, p, {
          action: 'fhir.read',
          entity,
          patientId: raw.compartment,
          outcome: 'failure',
          detail: { status: 410 },
        });
        throw new HttpError(410, 'gone', `${type}/${id} has been deleted`, {}, 'deleted');
      }
      await audit(ctx, req, p, { action: 'fhir.read', entity, patientId: raw.compartment });
      sendStored(req, res, raw);
    },

    async vread(req: Request, res: Response): Promise<void> {
      const type = req.params.type as string;
      const id = checkId(req.params.id as string);
      const vid = req.params.vid as string;
      const p = principalOf(res);
      const entity = `${type}/${id}/_history/${vid.slice(0, 20)}`;
      if (!typeAllowed(p, type, 'r')) return denyType(ctx, req, res, type, entity);
      await assertActiveUser(ctx, req, p);
      const version = /^[1-9]\d{0,8}$/.test(vid) ? await readVersion(db, type, id, Number(vid)) : undefined;
      // visibility is judged on the version's own body and the resource's compartment
      if (!version || !canSee(p, 'r', type, id, version.compartment, () => version.resource as never)) {
        await audit(ctx, req, p, {
          action: 'fhir.vread',
          entity,
          outcome: 'failure',
          detail: { status: 404 },
        });
        throw notFound(`${type}/${id} version ${vid.slice(0, 20)} was not found`);
      }
      if (version.deleted) {
        await audit(ctx, req, p, {
          action: 'fhir.vread',
          entity,
          patientId: version.compartment,
          outcome: 'failure',
          detail: { status: 410 },
        });
        throw new HttpError(410, 'gone', `${type}/${id} version ${vid} is a deletion`, {}, 'deleted');
      }
      await audit(ctx, req, p, { action: 'fhir.vread', entity, patientId: version.compartment });
      sendStored(req, res, version);
    },

    async history(req: Request, res: Response): Promise<void> {
      const type = req.params.type as string;
      const id = checkId(req.params.id as string);
      const p = principalOf(res);
      const entity = `${type}/${id}/_history`;
      if (!typeAllowed(p, type, 'r')) return denyType(ctx, req, res, type, entity);
      const count = parseCount(req.query._count, 100, 1000);
      await assertActiveUser(ctx, req, p);
      const current = await readRaw(db, type, id);
      if (!current || !canSee(p, 'r', type, id, current.compartment, () => JSON.parse(current.body))) {
        await audit(ctx, req, p, {
          action: 'fhir.history',
          entity,
          outcome: 'failure',
          detail: { status: 404 },
        });
        throw notFoundAs(type, id);
      }
      const versions = await listHistory(db, type, id, count);
      await audit(ctx, req, p, { action: 'fhir.history', entity, patientId: current.compartment });
      const base = ctx.config.fhirBaseUrl;
      const entries = versions.map((v) => {
        const fullUrl = JSON.stringify(`${base}/${type}/${id}`);
        const request = JSON.stringify({
          method: v.deleted ? 'DELETE' : v.versionId === 1 ? 'POST' : 'PUT',
          url: v.versionId === 1 ? type : `${type}/${id}`,
        });
        const response = JSON.stringify({
          status: v.deleted ? '204' : v.versionId === 1 ? '201' : '200',
          etag: `W/"${v.versionId}"`,
          lastModified: v.lastUpdated.toISOString(),
        });
        return `{"fullUrl":${fullUrl},${v.deleted ? '' : `"resource":${v.body},`}"request":${request},"response":${response}}`;
      });
      res.status(200).setHeader('Content-Type', FHIR_JSON);
      res.end(
        `{"resourceType":"Bundle","type":"history","total":${current.versionId},"link":[{"relation":"self","url":${JSON.stringify(`${base}/${type}/${id}/_history`)}}],"entry":[${entries.join(',')}]}`,
      );
    },
  };
}
