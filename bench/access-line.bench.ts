/*
 * Two per-request costs of the FHIR read's lean path (src/http/lean-dispatch.ts), measured in
 * this process on the CPU clock (process.cpuUsage), the ways alternating in rounds:
 * - the access line: the product's logger (pino with its redaction paths), the access writer
 *   (src/http/logger.ts accessLogger: the same logger without redaction), and the bare floor —
 *   the same JSON line built with JSON.stringify and written with one writeSync; all three to
 *   /dev/null, synchronously, inside a request context (the logger's mixin adds the request id)
 * - the security and response headers of a read set on a node ServerResponse: the names as
 *   helmet and the handlers spell them, and in lower case (what node keys its table by)
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Request, Response } from 'express';
import { pino } from 'pino';
import { accessLogger, createLogger } from '../src/http/logger.ts';
import { requestContext } from '../src/http/request-context.ts';
import type { BenchArgs } from './run.ts';
import { median } from './stats.ts';

const ROUNDS = 6;

/** CPU µs per call of fn, over n calls. */
function cpuPerCall(n: number, fn: () => void): number {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

/** Runs each way `rounds` times in turn, `n` calls a turn; the median µs per call of each. */
function alternate(ways: Record<string, () => void>, n: number): Record<string, number> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
  for (const fn of Object.values(ways)) cpuPerCall(Math.ceil(n / 5), fn); // warm up
  for (let r = 0; r < ROUNDS; r++)
    for (const [k, fn] of Object.entries(ways)) times[k]!.push(cpuPerCall(n, fn));
  return Object.fromEntries(Object.entries(times).map(([k, t]) => [k, median(t)]));
}

function accessLines(n: number) {
  const fd = openSync('/dev/null', 'w');
  const sink = pino.destination({ dest: '/dev/null', sync: true });
  const logger = createLogger('info', sink as unknown as NodeJS.WritableStream);
  const access = accessLogger(logger);
  const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
  const fields = () => ({
    req: { id, method: 'GET', url: '/fhir/Patient/…' },
    res: { statusCode: 200 },
    responseTime: 2,
  });
  let result: Record<string, number> = {};
  // inside a request context, as the lean dispatcher writes it (the mixin reads the request id)
  requestContext()({ id } as Request, {} as Response, () => {
    result = alternate(
      {
        bare: () => {
          const line = {
            level: 30,
            time: new Date().toISOString(),
            pid: process.pid,
            hostname: hostname(),
            service: 'smart-ocean-launch',
            reqId: id,
            ...fields(),
            msg: 'request completed',
          };
          writeSync(fd, `${JSON.stringify(line)}\n`);
        },
        logger: () => logger.info(fields(), 'request completed'),
        access: () => access.info(fields(), 'request completed'),
      },
      n,
    );
  });
  closeSync(fd);
  sink.end();
  return result;
}

function headers(n: number) {
  const names = [
    'Content-Security-Policy',
    'Cross-Origin-Opener-Policy',
    'Cross-Origin-Resource-Policy',
    'Origin-Agent-Cluster',
    'Referrer-Policy',
    'X-Content-Type-Options',
    'X-DNS-Prefetch-Control',
    'X-Download-Options',
    'X-Frame-Options',
    'X-Permitted-Cross-Domain-Policies',
    'X-XSS-Protection',
    'X-Request-Id',
    'Access-Control-Allow-Origin',
    'Access-Control-Expose-Headers',
    'ETag',
    'Last-Modified',
    'Content-Type',
  ];
  const lower = names.map((name) => name.toLowerCase());
  const req = new IncomingMessage(new Socket());
  const set = (list: string[]) => () => {
    const res = new ServerResponse(req);
    for (const name of list) res.setHeader(name, 'a value of a usual length');
  };
  const times = alternate({ bare: () => new ServerResponse(req), mixed: set(names), lower: set(lower) }, n);
  return { count: names.length, bare: times.bare!, mixed: times.mixed!, lower: times.lower! };
}

export default async function accessLineBench(_args: BenchArgs): Promise<string> {
  const lines = accessLines(100_000);
  const h = headers(100_000);
  const us = (x: number) => x.toFixed(2);
  return [
    '## Per-request costs of the lean read (`bench/access-line.bench.ts`)',
    '',
    `In-process, CPU clock, ${ROUNDS} alternating rounds of 100,000 calls each, medians.`,
    '',
    '| the access line, to /dev/null | CPU µs per line | ÷ bare |',
    '| --- | ---: | ---: |',
    `| bare: \`JSON.stringify\` + one \`writeSync\` | ${us(lines.bare!)} | 1.00 |`,
    `| the product's logger (pino, redaction paths) | ${us(lines.logger!)} | ${(lines.logger! / lines.bare!).toFixed(2)} |`,
    `| **the access writer** (\`accessLogger\`: no redaction) | **${us(lines.access!)}** | ${(lines.access! / lines.bare!).toFixed(2)} |`,
    '',
    `| ${h.count} headers of a read on a node \`ServerResponse\` | CPU µs per response | headers alone (− bare) |`,
    '| --- | ---: | ---: |',
    `| bare: the \`ServerResponse\` only | ${us(h.bare!)} | |`,
    `| names as helmet and the handlers spell them | ${us(h.mixed!)} | ${us(h.mixed! - h.bare!)} |`,
    `| **names in lower case** | **${us(h.lower!)}** | ${us(h.lower! - h.bare!)} |`,
  ].join('\n');
}
