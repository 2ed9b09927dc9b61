/*
 * Child process of bench/fhir.bench.ts: one HTTP server on 127.0.0.1, either
 * - "product": the real application (buildServer) on the bench database, or
 * - "bare": node:http + pg reading the same rows with the same SQL a minimal server would use;
 *   under /audited/ the same server is issue 13's *audited floor*: the same read plus one durable
 *   audit row per request, group-committed (concurrent requests share one multi-row INSERT into
 *   the product's audit_events, awaited before answering) — no token check, no framework
 * It reports its own memory (peak RSS sampled every 20 ms) over IPC, so the parent measures
 * the server, not itself. The product child can also mint an access token through the real
 * launch → authorize → token flow, and serves a second port: the "floor", the product's own
 * obligations for a read (token check, the read with the user's state in one round trip, the
 * durable audit row) with its own modules but without the HTTP framework, so the bench can say
 * how much of the gap to the bare server is the work itself and how much the framework.
 */
import { createServer } from 'node:http';
import pg from 'pg';

const mode = process.argv[2];
const databaseUrl = process.env.DATABASE_URL!;

let peak = 0;
/** JavaScript memory (V8 heap + external + array buffers): what the code holds, not what the OS lent. */
const jsMemory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
let peakJs = 0;
setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
  peakJs = Math.max(peakJs, jsMemory());
}, 20).unref();

function send(message: unknown) {
  process.send?.(message);
}

/**
 * Group commit, as small as it gets: every caller awaits its row's durable INSERT; rows queued
 * while an INSERT is in flight go together in the next one (one statement text, prepared once).
 */
function groupCommit(pool: pg.Pool) {
  type Row = [
    action: string,
    userId: string,
    clientId: string,
    patientId: string,
    entity: string,
    ip: string,
  ];
  let queue: { row: Row; done: (err?: unknown) => void }[] = [];
  let flushing = false;
  const drain = async () => {
    flushing = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await pool.query({
          name: 'bench-audit-batch',
          text: `INSERT INTO audit_events (action, outcome, user_id, client_id, patient_id, entity, ip)
                 SELECT a, 'success', u, c, p, e, i
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(a, u, c, p, e, i)`,
          values: [0, 1, 2, 3, 4, 5].map((k) => batch.map((b) => b.row[k])),
        });
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.done(err);
      }
    }
    flushing = false;
  };
  return (row: Row) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ row, done: (err) => (err ? reject(err) : resolve()) });
      if (!flushing) void drain();
    });
}

async function bare() {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const audit = groupCommit(pool);
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const audited = /^\/audited\/(Patient|everything)\/([A-Za-z0-9\-.]{1,64})$/.exec(url.pathname);
      if (audited) {
        const [, kind, id] = audited as unknown as [string, string, string];
        if (kind === 'Patient') {
          const r = await pool.query(
            `SELECT resource::text AS body FROM fhir_resources WHERE resource_type = 'Patient' AND id = $1`,
            [id],
          );
          if (!r.rows[0]) {
            res.writeHead(404).end();
            return;
          }
          await audit(['fhir.read', 'bench-user', 'bench-client', id, `Patient/${id}`, '127.0.0.1']);
          res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(r.rows[0].body);
          return;
        }
        // $everything as the product serves it: pages of _count (keyset `after`), each page one
        // request with its own audit row, a `next` link while a page is full
        const count = Math.min(Number(url.searchParams.get('_count') ?? 1000), 1000);
        const after = Number(url.searchParams.get('after') ?? 0);
        const first = after === 0;
        const patient = first
          ? await pool.query(
              `SELECT resource::text AS body FROM fhir_resources WHERE resource_type = 'Patient' AND id = $1`,
              [id],
            )
          : undefined;
        const limit = first ? count - 1 : count;
        const r = await pool.query(
          `SELECT seq, resource::text AS body FROM fhir_resources
            WHERE compartment_patient = $1 AND seq > $2 AND resource_type <> 'Patient' AND NOT deleted
            ORDER BY seq LIMIT $3`,
          [id, after, limit],
        );
        await audit([
          'fhir.everything',
          'bench-user',
          'bench-client',
          id,
          `Patient/${id}/$everything`,
          '127.0.0.1',
        ]);
        const entries = [
          ...(patient?.rows[0] ? [patient.rows[0].body as string] : []),
          ...r.rows.map((row) => row.body as string),
        ];
        const next =
          r.rows.length === limit
            ? `,"link":[{"relation":"next","url":"http://${req.headers.host}/audited/everything/${id}?_count=${count}&after=${r.rows[r.rows.length - 1].seq}"}]`
            : '';
        res.writeHead(200, { 'content-type': 'application/fhir+json' });
        res.write(`{"resourceType":"Bundle","type":"searchset"${next},"entry":[`);
        entries.forEach((body, i) => {
          res.write(`${i ? ',' : ''}{"resource":${body}}`);
        });
        res.end(']}');
        return;
      }
      const read = /^\/Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(url.pathname);
      if (read) {
        const r = await pool.query(
          `SELECT resource::text AS body FROM fhir_resources WHERE resource_type = 'Patient' AND id = $1`,
          [read[1]],
        );
        if (!r.rows[0]) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(r.rows[0].body);
        return;
      }
      const all = /^\/everything\/([A-Za-z0-9\-.]{1,64})$/.exec(url.pathname);
      if (all) {
        // the same rows, streamed in keyset pages of 1000 on one response
        res.writeHead(200, { 'content-type': 'application/fhir+json' });
        const patient = await pool.query(
          `SELECT resource::text AS body FROM fhir_resources WHERE resource_type = 'Patient' AND id = $1`,
          [all[1]],
        );
        res.write(
          `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":${patient.rows[0]?.body ?? 'null'}}`,
        );
        let after = 0;
        for (;;) {
          const r = await pool.query(
            `SELECT seq, resource::text AS body FROM fhir_resources
              WHERE compartment_patient = $1 AND seq > $2 AND resource_type <> 'Patient' AND NOT deleted
              ORDER BY seq LIMIT 1000`,
            [all[1], after],
          );
          for (const row of r.rows) res.write(`,{"resource":${row.body}}`);
          if (r.rows.length < 1000) break;
          after = Number(r.rows[r.rows.length - 1].seq);
        }
        res.end(']}');
        return;
      }
      res.writeHead(404).end();
    } catch {
      res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}` };
}

async function product() {
  const { expressBorn } = await import('../src/http/express-born.ts');
  const { loadConfig } = await import('../src/config.ts');
  const { buildServer } = await import('../src/server.ts');
  const { createLogger } = await import('../src/http/logger.ts');
  const born = expressBorn(); // as main.ts serves
  const server = createServer(born.options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  const config = loadConfig({
    ...process.env,
    PUBLIC_URL: url,
    HOST: '127.0.0.1',
    PORT: '0',
    // the product logs as production does (one access line a request); BENCH_LOG_LEVEL to vary it
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DEMO_DATA: 'false',
    NODE_ENV: 'test',
  });
  const built = await buildServer(config, { logger: createLogger(config.logLevel) });
  born.bind(built.app);
  server.on('request', built.handler);
  const floorUrl = await floor(built.ctx);
  process.on('message', async (m: { cmd: string; patientId?: string }) => {
    if (m.cmd !== 'token') return;
    try {
      const { createTestUser, issueTokens } = await import('../test/helpers/oidc.ts');
      const { putResource } = await import('../src/fhir/repository.ts');
      const user = await createTestUser(built.ctx);
      await putResource(built.ctx.db, {
        resourceType: 'Practitioner',
        id: user.practitionerId,
        name: [{ family: user.familyName }],
      });
      const tokens = await issueTokens({ url, ctx: built.ctx } as never, {
        user,
        patientId: m.patientId,
        scope: 'openid fhirUser launch patient/*.read',
      });
      send({ token: tokens.body.access_token });
    } catch (err) {
      send({ error: (err as Error).message });
    }
  });
  return { url, floorUrl };
}

async function floor(ctx: import('../src/context.ts').AppContext): Promise<string> {
  const { AccessTokenVerifier } = await import('../src/fhir/access-token.ts');
  const { canSee } = await import('../src/fhir/access.ts');
  const { readRawAsUser } = await import('../src/fhir/reads.ts');
  const { liveAccessToken } = await import('../src/oidc/grant-revocation.ts');
  const verifier = new AccessTokenVerifier(ctx);
  const server = createServer(async (req, res) => {
    try {
      const read = /^\/fhir\/Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(req.url ?? '');
      if (!read || req.method !== 'GET') {
        res.writeHead(404).end();
        return;
      }
      const id = read[1]!;
      const p = await verifier.authenticate(req as never);
      const { raw, live } = await readRawAsUser(ctx.db, 'Patient', id, p, liveAccessToken);
      if (!live || !raw || raw.deleted || !canSee(p, 'r', 'Patient', id, raw.compartment, () => ({}))) {
        res.writeHead(404).end();
        return;
      }
      await ctx.audit.record({
        action: 'fhir.read',
        userId: p.userId,
        clientId: p.clientId,
        patientId: raw.compartment,
        entity: `Patient/${id}`,
        ip: req.socket.remoteAddress ?? null,
      });
      res
        .writeHead(200, {
          'content-type': 'application/fhir+json; charset=utf-8',
          etag: `W/"${raw.versionId}"`,
        })
        .end(raw.body);
    } catch {
      res.writeHead(401).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const { url, floorUrl } = mode === 'bare' ? { ...(await bare()), floorUrl: undefined } : await product();
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'mem-reset') {
    global.gc?.();
    peak = process.memoryUsage().rss;
    peakJs = jsMemory();
    send({ rss: peak, js: peakJs });
  } else if (m.cmd === 'cpu') {
    const u = process.cpuUsage();
    send({ cpu: (u.user + u.system) / 1000 });
  } else if (m.cmd === 'exit') {
    process.exit(0);
  } else if (m.cmd === 'mem-peak') {
    peak = Math.max(peak, process.memoryUsage().rss);
    peakJs = Math.max(peakJs, jsMemory());
    send({ peak, peakJs });
  }
});
send({ ready: true, url, floorUrl });
