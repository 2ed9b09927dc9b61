/*
 * The guard pipeline of every FHIR interaction: named steps, always all of them, in this order
 * (the route table gives `guarded(interaction)` as the interaction's handler, so none can skip one):
 *   authenticate → typeAllowed → perform → liveToken → audit → answer
 * - authenticate: a valid access token of this server, else 401 (audited)
 * - typeAllowed: the token's scopes reach the type at all, else 403 (audited)
 * - perform: the interaction reads what it needs and decides an Outcome; it writes nothing to
 *   the response, so nothing leaves before the steps after it have run
 * - liveToken: the token still counts — its grant not ended, its user active (./live-token.ts) —
 *   else 401 (audited); a read that proved it in its own round trip (the hot path) spares the query
 * - audit: one row for the outcome — user, client, patient, what; never a body — recorded
 *   before the answer leaves, refusals (404, 410) included
 * - answer: sends the outcome's body, or its refusal in the FHIR error format
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../context.ts';
import type { HttpError } from '../http/errors.ts';
import { type Principal, typeAllowed } from './access.ts';
import { type AccessTokenVerifier, insufficientScope, unauthorized } from './access-token.ts';
import { type LiveTokenSql, tokenLiveness } from './live-token.ts';

type Detail = Record<string, string | number | boolean | null>;

export interface AuditFacts {
  action: 'fhir.read' | 'fhir.vread' | 'fhir.history' | 'fhir.search' | 'fhir.everything' | 'fhir.denied';
  entity: string;
  patientId?: string | null;
  outcome?: 'success' | 'failure';
  detail?: Detail;
}

/** What `perform` decided. */
export interface Outcome {
  /** A refusal (404, 410 …): audited as a failure with its status, then sent as the answer. */
  refusal?: HttpError;
  /** The Patient the audit row names (default: the token's patient). */
  patientId?: string | null;
  detail?: Detail;
  /** Set by a read that learnt, in its own round trip, whether the token still counts. */
  live?: boolean;
  /** Writes the answer (after the audit row is recorded). */
  send?: (req: Request, res: Response) => void;
}

/** What an interaction is handed: the token's principal and the request's target. */
export interface Access {
  principal: Principal;
  type: string;
  entity: string;
}

export interface Interaction {
  action: Exclude<AuditFacts['action'], 'fhir.denied'>;
  /** The scope interaction the type must be granted for: read or search. */
  interaction: 'r' | 's';
  /** The type the request reaches and its audit entity; throws a 400 for a malformed request. */
  target(req: Request): { type: string; entity: string };
  perform(req: Request, access: Access): Promise<Outcome>;
}

interface State {
  principal?: Principal;
  access?: Access;
  outcome?: Outcome;
}

/** The path's first two segments (`/Patient/x`), for refusals made before the target is known. */
const pathEntity = (req: Request) => req.path.split('/').slice(0, 3).join('/');

/** The pipeline for one interaction: the one handler a route gives as `guarded(interaction)`. */
export function fhirPipeline(ctx: AppContext, verifier: AccessTokenVerifier, liveTokenSql: LiveTokenSql) {
  const isLive = tokenLiveness(liveTokenSql);
  const record = (req: Request, principal: Principal | undefined, facts: AuditFacts): Promise<void> =>
    ctx.audit.record({
      action: facts.action,
      outcome: facts.outcome ?? 'success',
      userId: principal?.userId ?? null,
      clientId: principal?.clientId ?? null,
      patientId: facts.patientId ?? principal?.patient ?? null,
      entity: facts.entity.slice(0, 300),
      requestId: typeof req.id === 'string' ? req.id : req.id != null ? String(req.id) : null,
      ip: req.ip ?? null,
      detail: facts.detail ?? null,
    });

  /** Every step reads and writes the request's own state; a step refuses by throwing. */
  type Step = (req: Request, s: State) => Promise<void>;

  const authenticate: Step = async (req, s) => {
    try {
      s.principal = await verifier.authenticate(req);
    } catch (err) {
      await record(req, undefined, {
        action: 'fhir.denied',
        entity: pathEntity(req),
        outcome: 'failure',
        detail: { status: 401 },
      });
      throw err;
    }
  };

  const allowType =
    (i: Interaction): Step =>
    async (req, s) => {
      const principal = s.principal!;
      const { type, entity } = i.target(req);
      if (!typeAllowed(principal, type, i.interaction)) {
        await record(req, principal, {
          action: 'fhir.denied',
          entity,
          outcome: 'failure',
          detail: { status: 403 },
        });
        throw insufficientScope(`the granted scopes do not allow reading ${type}`);
      }
      s.access = { principal, type, entity };
    };

  const perform =
    (i: Interaction): Step =>
    async (req, s) => {
      s.outcome = await i.perform(req, s.access!);
    };

  const liveToken: Step = async (req, s) => {
    const principal = s.principal!;
    const live = s.outcome!.live ?? (await isLive(ctx.db, principal));
    if (!live) {
      // revoked, or its user deactivated, after the token was issued: it no longer counts
      await record(req, principal, {
        action: 'fhir.denied',
        entity: pathEntity(req),
        outcome: 'failure',
        detail: { status: 401, reason: 'grant ended' },
      });
      throw unauthorized('the access token is no longer valid: its grant has ended');
    }
  };

  const audit =
    (i: Interaction): Step =>
    async (req, s) => {
      const { access, outcome } = s;
      const refusal = outcome!.refusal;
      await record(req, access!.principal, {
        action: i.action,
        entity: access!.entity,
        patientId: outcome!.patientId,
        outcome: refusal ? 'failure' : 'success',
        detail: refusal ? { ...outcome!.detail, status: refusal.status } : outcome!.detail,
      });
    };

  const answer = (req: Request, res: Response, next: NextFunction, s: State) => {
    const outcome = s.outcome!;
    if (outcome.refusal) return next(outcome.refusal);
    outcome.send!(req, res);
  };

  /*
   * The steps run in one handler, awaited in turn: one hop of the router (or the lean
   * dispatcher) instead of one per step, and no promise of a step's own beyond its awaits —
   * on the read path each hop and promise was CPU of its own (BENCHMARKS.md, issue 13, after
   * midnight on 2026-11-29).
   */
  return (i: Interaction): RequestHandler => {
    const steps = [authenticate, allowType(i), perform(i), liveToken, audit(i)];
    return async (req, res, next) => {
      const s: State = {};
      for (const step of steps) await step(req, s);
      answer(req, res, next, s);
    };
  };
}
