/*
 * Prometheus metrics (prom-client), one registry per server so tests can build several.
 * - labels are low-cardinality by construction: route families, resource types, grant types —
 *   never ids, paths with ids, or anything a patient could be identified by
 * - GET /metrics, behind METRICS_TOKEN when set; with METRICS_INTERNAL_ONLY, answered only to
 *   loopback and private client addresses (anyone else gets the 404 of a path that is not there)
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';
import type { RequestHandler, Router } from 'express';
import { Router as createRouter } from 'express';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '../db/database.ts';

const FAMILIES: [RegExp, string][] = [
  [/^\/fhir\/\.well-known\//, 'discovery'],
  [/^\/fhir\/metadata/, 'fhir_metadata'],
  [
    /^\/fhir\/(auth|token|introspect|revoke|reg|userinfo|me|jwks|session|request|backchannel|device)/,
    'oauth',
  ],
  [/^\/fhir\//, 'fhir_api'],
  [/^\/interaction\//, 'oauth_interaction'],
  [/^\/launch/, 'launch'],
  [/^\/admin\/api\//, 'admin_api'],
  [/^\/admin/, 'admin_ui'],
  [/^\/(healthz|readyz|metrics)$/, 'health'],
  [/^\/static\//, 'static'],
];

/** FHIR interaction of a request, for the labels (the FHIR capability's: src/fhir/interaction-label.ts). */
export type FhirInteractionLabel = (
  method: string,
  path: string,
) => { resourceType: string; interaction: string } | undefined;

/** launched: 302 to Ocean; sign_in: sent to /login first; refused: 4xx page; failed: 5xx. */
function launchOutcome(status: number): string {
  if (status === 302) return 'launched';
  if (status >= 300 && status < 400) return 'sign_in';
  if (status >= 500) return 'failed';
  return 'refused';
}

export function routeFamily(path: string): string {
  for (const [re, family] of FAMILIES) if (re.test(path)) return family;
  return 'ehr';
}

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by route family, method and status class',
    labelNames: ['family', 'method', 'status'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly launches = new Counter({
    name: 'smart_launches_total',
    help: 'EHR launches started at /launch, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly tokensIssued = new Counter({
    name: 'oauth_tokens_issued_total',
    help: 'Token endpoint successes by grant type',
    labelNames: ['grant_type'] as const,
    registers: [this.registry],
  });
  readonly fhirRequests = new Counter({
    name: 'fhir_requests_total',
    help: 'FHIR API requests by resource type, interaction and status',
    labelNames: ['resource_type', 'interaction', 'status'] as const,
    registers: [this.registry],
  });
  readonly fhirDuration = new Histogram({
    name: 'fhir_request_duration_seconds',
    help: 'FHIR API latency by interaction',
    labelNames: ['interaction'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor(
    db: Database,
    private readonly fhirInteraction: FhirInteractionLabel,
  ) {
    collectDefaultMetrics({ register: this.registry });
    const pool = new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const s = db.stats();
        this.set({ state: 'total' }, s.total);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'waiting' }, s.waiting);
      },
    });
    void pool;
  }

  /**
   * Times every request by route family; counts FHIR interactions and launches as they finish.
   * Counting at the HTTP edge sees every outcome — refusals by the token check, 404s of unknown
   * types, 503s — without each handler having to remember to count.
   */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const end = this.httpDuration.startTimer();
      const path = req.originalUrl.split('?')[0] ?? '';
      const family = routeFamily(path);
      const fhir =
        family === 'fhir_api' || family === 'fhir_metadata'
          ? this.fhirInteraction(req.method, path)
          : undefined;
      const endFhir = fhir ? this.fhirDuration.startTimer({ interaction: fhir.interaction }) : undefined;
      res.once('finish', () => {
        end({ family, method: req.method, status: `${Math.floor(res.statusCode / 100)}xx` });
        if (fhir) {
          endFhir?.();
          this.fhirRequests.inc({
            resource_type: fhir.resourceType,
            interaction: fhir.interaction,
            status: String(res.statusCode),
          });
        }
        if (family === 'launch' && req.method === 'GET' && /^\/launch\/?$/.test(path)) {
          this.launches.inc({ outcome: launchOutcome(res.statusCode) });
        }
      });
      next();
    };
  }

  routes(options: { token: string | undefined; internalOnly: boolean }): Router {
    const router = createRouter();
    const { token, internalOnly } = options;
    const expected = token ? createHash('sha256').update(token).digest() : undefined;
    router.get('/metrics', async (req, res, next) => {
      try {
        if (internalOnly && !isInternalAddress(req.ip)) {
          next();
          return;
        }
        if (expected) {
          const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
          if (!timingSafeEqual(createHash('sha256').update(given).digest(), expected)) {
            res
              .status(401)
              .set('WWW-Authenticate', 'Bearer realm="metrics"')
              .json({ error: 'invalid_token' });
            return;
          }
        }
        res.set('Content-Type', this.registry.contentType).send(await this.registry.metrics());
      } catch (err) {
        next(err);
      }
    });
    return router;
  }
}

/** Loopback, RFC 1918, link-local and unique-local addresses: where an operator's scraper lives. */
const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ['127.0.0.0', 8],
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['169.254.0.0', 16],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv6');

/** True for a client address (req.ip, as TRUST_PROXY resolves it) inside the private ranges. */
export function isInternalAddress(ip: string | undefined): boolean {
  if (!ip) return false;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
  try {
    return isIPv4(v4) ? INTERNAL.check(v4, 'ipv4') : INTERNAL.check(ip, 'ipv6');
  } catch {
    return false;
  }
}
