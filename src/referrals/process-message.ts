/*
 * POST /fhir/$process-message (https://hl7.org/fhir/R4/messageheader-operation-process-message.html)
 * for Ocean's eReferral messages (CONTRACT §3.7).
 * - authenticate (./message-auth.ts) before the body is read; JSON only (application/fhir+json or
 *   application/json), up to BODY_LIMIT
 * - a malformed or unsupported message: 400 + OperationOutcome naming the problem; the message is
 *   kept in the inbox as `refused` and nothing is filed
 * - a good one is applied in ONE transaction (./apply-message.ts); 200 only after the commit, so a
 *   crash before it leaves nothing and Ocean's retry is accepted as new; the same message again:
 *   200, nothing changes
 * - logs and the audit trail get ids, the event and the outcome — never a value from the message
 */
import type { Request, Response } from 'express';
import type { AuditTrail } from '../audit/audit.ts';
import { type Database, InvalidInputError } from '../db/database.ts';
import { HttpError, operationOutcome } from '../http/errors.ts';
import { type Applied, applyMessage } from './apply-message.ts';
import { keepRefused } from './inbox.ts';
import type { Integrations } from './integrations.ts';
import { headerFacts, MessageError, readMessage } from './message.ts';
import type { Sender } from './message-auth.ts';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

export interface ProcessMessageDeps {
  db: Database;
  audit: AuditTrail;
  integrations: Integrations;
  /** Called after a commit that scheduled a letter fetch (starts the job on this instance). */
  onFiled?: () => void;
}

const refuse = (message: string) => new HttpError(400, 'invalid_request', message, {}, 'invalid');

export function processMessageHandler(deps: ProcessMessageDeps) {
  return async function processMessage(req: Request, res: Response): Promise<void> {
    const sender = res.locals.sender as Sender;
    const text = typeof req.body === 'string' ? req.body : '';
    if (text.length === 0) throw refuse('the body must be a FHIR message Bundle');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      await keepRefused(deps.db, {
        integrationId: sender.integration.id,
        problem: 'the body is not valid JSON',
        text,
      });
      throw refuse('the body is not valid JSON');
    }
    let applied: Applied;
    let event: string | undefined;
    try {
      const message = readMessage(body);
      event = message.event;
      applied = await deps.db.transaction((tx) => applyMessage(tx, sender.integration, message, text));
    } catch (err) {
      const problem =
        err instanceof MessageError || (err instanceof HttpError && err.status === 400)
          ? err.message
          : err instanceof InvalidInputError
            ? 'the message holds a value that cannot be stored (such as a NUL character)'
            : undefined;
      if (problem === undefined) throw err;
      const facts = headerFacts(body);
      await keepRefused(deps.db, { integrationId: sender.integration.id, ...facts, problem, text });
      await record(deps, req, sender, 'refused', facts.event);
      throw refuse(problem);
    }
    await record(deps, req, sender, applied.outcome, event, applied);
    if (applied.outcome === 'filed') deps.onFiled?.();
    req.log?.info({ event, outcome: applied.outcome, integration: sender.integration.id }, 'ocean message');
    res.status(200).type(FHIR_JSON);
    res.end(
      JSON.stringify(
        operationOutcome(
          'information',
          'informational',
          applied.outcome === 'duplicate'
            ? 'the message was already received; nothing changed'
            : applied.outcome === 'filed'
              ? 'the message was received and filed in the patient chart'
              : applied.outcome === 'unmatched'
                ? 'the message was received; it waits for an administrator to match the patient'
                : 'the message was received',
        ),
      ),
    );
  };
}

function record(
  deps: ProcessMessageDeps,
  req: Request,
  sender: Sender,
  outcome: string,
  event: string | undefined,
  applied?: Applied,
): Promise<void> {
  return deps.audit.record({
    action: 'referral.message',
    outcome: outcome === 'refused' ? 'failure' : 'success',
    clientId: sender.clientId ?? null,
    patientId: applied?.outcome === 'filed' ? applied.patientId : null,
    entity:
      applied?.outcome === 'filed'
        ? `ServiceRequest/${applied.serviceRequestId}`
        : `site/${sender.integration.siteNum}`,
    requestId: req.id != null ? String(req.id) : null,
    ip: req.ip ?? null,
    detail: { event: event ?? null, outcome, via: sender.via },
  });
}
