#!/usr/bin/env node
/*
 * Lints the deployment files without a Docker daemon (none exists on our machines or in CI):
 * - Dockerfile: parsed and validated by dockerfile-utils (the Docker language server's
 *   validator: syntax, instruction arguments, flags), then this project's rules on the parsed
 *   instructions (dockerfile-ast): several stages; a runtime on Node.js 22 slim; production
 *   dependencies only; a non-root USER; a HEALTHCHECK on /readyz; CMD running dist/ with plain
 *   node in exec form (node is PID 1 and gets SIGTERM); no key, data or .env copied in; ENV
 *   NODE_OPTIONS carrying npm start's node options (the heap budget)
 * - .dockerignore keeps keys, data, .env and node_modules out of the build context
 * - docker-compose.yml: dclint (the Compose JSON schema plus its best-practice rules, no
 *   warning allowed), then ours: PostgreSQL, two app replicas built from one image, Caddy
 *   publishing 80/443, no bind mount of the source tree into an app, TRUST_PROXY and one
 *   PUBLIC_URL, secrets only from the environment (.env)
 * - deploy/Caddyfile balances round-robin over every app service with /readyz health checks
 * Exit 1 with one line per problem.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { parse as parseYaml } from 'yaml';
import { npmStartCommand } from './start-command.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (f) => readFileSync(join(ROOT, f), 'utf8');
const problems = [];
const problem = (file, message) => problems.push(`${file}: ${message}`);

// ---- Dockerfile
{
  const text = read('Dockerfile');
  for (const d of validate(text)) {
    problem(
      'Dockerfile',
      `line ${d.range.start.line + 1}: ${d.message} (${d.severity === 1 ? 'error' : 'warning'})`,
    );
  }
  const dockerfile = DockerfileParser.parse(text);
  const froms = dockerfile.getFROMs();
  if (froms.length < 2) problem('Dockerfile', 'needs a build stage and a runtime stage (multi-stage)');
  const args = Object.fromEntries(
    dockerfile.getInitialARGs().flatMap((i) => {
      const m = /^(\w+)=(.*)$/.exec(i.getArgumentsContent() ?? '');
      return m ? [[m[1], m[2]]] : [];
    }),
  );
  const image = (from) => (from.getImageName() ?? '').replace(/^\$\{?(\w+)\}?$/, (_, v) => args[v] ?? _);
  const runtime = froms.at(-1);
  const runtimeImage = runtime ? image(runtime) : '';
  if (!/^node:22[-.\w]*slim$/.test(runtimeImage))
    problem('Dockerfile', `runtime stage must be Node.js 22 LTS slim, not ${runtimeImage || 'nothing'}`);
  const lines = text.split('\n');
  const start = runtime ? runtime.getRange().start.line : 0;
  const inRuntime = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= start);
  const kw = (k) => inRuntime.filter((i) => i.getKeyword() === k);
  const user = kw('USER').at(-1)?.getArgumentsContent() ?? 'root';
  if (['root', '0', '0:0'].includes(user.trim()))
    problem('Dockerfile', 'the runtime stage must run as a non-root USER');
  const health = kw('HEALTHCHECK').at(-1);
  if (
    !health ||
    !/\/readyz/.test(lines.slice(health.getRange().start.line, health.getRange().end.line + 1).join('\n'))
  )
    problem('Dockerfile', 'the runtime stage needs a HEALTHCHECK on /readyz');
  const cmd = kw('CMD').at(-1)?.getArgumentsContent() ?? '';
  if (!/^\[\s*"node",\s*"dist\/main\.js"\s*\]$/.test(cmd))
    problem(
      'Dockerfile',
      `CMD must be ["node", "dist/main.js"] (exec form: node is PID 1 and receives SIGTERM), not ${cmd}`,
    );
  // the image runs with the node options npm start gives the server (the heap budget): one
  // budget, so the benches (which read npm start's) measure what the image runs
  const startOptions = npmStartCommand().nodeOptions;
  const nodeOptions = kw('ENV')
    .flatMap((i) => i.getProperties())
    .find((p) => p.getName() === 'NODE_OPTIONS')
    ?.getValue()
    ?.split(/\s+/);
  for (const option of startOptions)
    if (!nodeOptions?.includes(option))
      problem('Dockerfile', `ENV NODE_OPTIONS must carry npm start's node option ${option} (package.json)`);
  for (const i of [...kw('COPY'), ...kw('ADD')]) {
    const a = i.getArgumentsContent() ?? '';
    if (/(^|\s)(\.\/)?(keys|data|\.env)\b/.test(a))
      problem('Dockerfile', `line ${i.getRange().start.line + 1}: copies keys, data or .env into the image`);
  }
  const omitDev = dockerfile
    .getInstructions()
    .some(
      (i) => i.getKeyword() === 'RUN' && /npm (ci|prune)\b.*--omit=dev/.test(i.getArgumentsContent() ?? ''),
    );
  if (!omitDev)
    problem('Dockerfile', 'the runtime must get production dependencies only (npm ci --omit=dev)');
  if (kw('STOPSIGNAL').some((i) => (i.getArgumentsContent() ?? '').trim() !== 'SIGTERM'))
    problem('Dockerfile', 'STOPSIGNAL must be SIGTERM (the server drains on it)');
}

// ---- .dockerignore
{
  const rules = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const allowList = rules[0] === '*';
  for (const p of ['keys', 'data', '.env', 'node_modules', 'dist']) {
    const excluded = allowList
      ? !rules.some((r) => r.replace(/\/$/, '') === `!${p}`)
      : rules.some((r) => r.replace(/^\/|\/$/g, '') === p);
    if (!excluded) problem('.dockerignore', `must keep ${p} out of the build context`);
  }
}

// ---- docker-compose.yml
{
  const require = createRequire(import.meta.url);
  const dclint = join(dirname(require.resolve('dclint/package.json')), 'bin', 'dclint.cjs');
  const r = spawnSync(
    process.execPath,
    [dclint, 'docker-compose.yml', '--max-warnings', '0', '--color', 'false'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) problem('docker-compose.yml', `dclint:\n${(r.stdout + r.stderr).trim()}`);

  const compose = parseYaml(read('docker-compose.yml'), { merge: true });
  const services = compose?.services ?? {};
  const byImage = (re) => Object.entries(services).filter(([, s]) => re.test(String(s.image ?? '')));
  if (byImage(/^postgres:/).length !== 1) problem('docker-compose.yml', 'needs one PostgreSQL service');
  const apps = Object.entries(services).filter(([, s]) => s.build !== undefined);
  if (apps.length < 2) problem('docker-compose.yml', 'needs two app replicas built from the Dockerfile');
  if (new Set(apps.map(([, s]) => s.image)).size !== 1)
    problem('docker-compose.yml', 'the replicas must run one image');
  const publicUrls = new Set();
  for (const [name, s] of apps) {
    const env = s.environment ?? {};
    if (Array.isArray(env)) problem('docker-compose.yml', `${name}: use the mapping form of environment`);
    if (env.NODE_ENV !== 'production') problem('docker-compose.yml', `${name}: NODE_ENV must be production`);
    if (!env.TRUST_PROXY || env.TRUST_PROXY === 'false')
      problem('docker-compose.yml', `${name}: TRUST_PROXY must be set (Caddy is one hop in front)`);
    for (const secret of ['SECRETS_KEY', 'ADMIN_TOKEN'])
      if (!/^\$\{\w+(:\?[^}]*)?\}$/.test(String(env[secret] ?? '')))
        problem('docker-compose.yml', `${name}: ${secret} must come from the environment (.env), required`);
    publicUrls.add(env.PUBLIC_URL);
    if (s.ports)
      problem('docker-compose.yml', `${name}: an app replica publishes no port (only the proxy does)`);
    for (const v of s.volumes ?? []) {
      const source = typeof v === 'string' ? v.split(':')[0] : v.source;
      if (/^[./]/.test(source ?? ''))
        problem('docker-compose.yml', `${name}: bind-mounts ${source} (no shared source tree)`);
    }
  }
  if (publicUrls.size !== 1) problem('docker-compose.yml', 'the replicas must share one PUBLIC_URL');
  const proxies = byImage(/^caddy:/);
  if (proxies.length !== 1) problem('docker-compose.yml', 'needs one Caddy service in front');
  else {
    const ports = (proxies[0][1].ports ?? []).map(String);
    for (const p of ['443:443', '80:80'])
      if (!ports.some((x) => x.endsWith(p))) problem('docker-compose.yml', `caddy must publish ${p}`);
  }

  // ---- deploy/Caddyfile
  const caddy = read('deploy/Caddyfile').replace(/#.*$/gm, '');
  const upstreams = /reverse_proxy\s+([^{\n]+)\{/.exec(caddy)?.[1].trim().split(/\s+/) ?? [];
  for (const [name] of apps)
    if (!upstreams.includes(`${name}:3000`))
      problem('deploy/Caddyfile', `reverse_proxy must name ${name}:3000`);
  if (!/lb_policy\s+round_robin/.test(caddy)) problem('deploy/Caddyfile', 'lb_policy round_robin');
  if (!/health_uri\s+\/readyz/.test(caddy)) problem('deploy/Caddyfile', 'health_uri /readyz');
}

if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(
  'deployment files: Dockerfile, .dockerignore, docker-compose.yml, deploy/Caddyfile — no problems\n',
);
