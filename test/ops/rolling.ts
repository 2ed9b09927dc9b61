/*
 * Rolling changes under load, for operations tests (SECRETS_KEY rotation, upgrades):
 * - Fleet: server processes behind one balancer (./proxy.ts) that sends only to the instances
 *   "in rotation" — an instance leaves it before it stops and rejoins when /readyz answers, as
 *   Caddy's health checks make it in production
 * - LaunchLoad: clinicians launching in a loop through the balancer, every launch checked
 *   (patient, and the SEK in the token response and the access token); failures are collected,
 *   never thrown, so a test can assert that none happened across the whole change
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/private-postgres.ts';
import {
  type ServerProcess,
  startServerProcess,
  type WorkingCopy,
  workingCopy,
} from '../helpers/processes.ts';
import { DEMO_CLINICIANS, DEMO_SITE, type DeploymentSetup } from './cluster.ts';
import { Clinician, type Discovery, jwtPayload, redeemCode, send } from './flow.ts';
import { type LoadBalancer, startProxy } from './proxy.ts';

interface Balancing {
  /** Port of each instance, by index. */
  ports: number[];
  /** Indexes of the instances the balancer sends to. */
  rotation: Set<number>;
}

export class Fleet {
  readonly instances: ServerProcess[] = [];
  readonly #copies: WorkingCopy[] = [];
  readonly #dirs: string[] = [];

  private constructor(
    readonly proxy: LoadBalancer,
    private readonly balancing: Balancing,
  ) {}

  static async create(): Promise<Fleet> {
    const balancing: Balancing = { ports: [], rotation: new Set() };
    const proxy = await startProxy(() =>
      [...balancing.rotation].sort((a, b) => a - b).map((i) => balancing.ports[i]!),
    );
    return new Fleet(proxy, balancing);
  }

  get url(): string {
    return this.proxy.url;
  }

  /** Starts an instance from `revision` (a git commit; default the working tree) and puts it in rotation. */
  async add(env: Record<string, string>, revision?: string): Promise<number> {
    const index = this.balancing.ports.length; // reserved now: adds may run concurrently
    this.balancing.ports[index] = 0;
    const copy = workingCopy(`fleet${index}`, revision);
    this.#copies.push(copy);
    const keysDir = mkdtempSync(join(tmpdir(), `keys-fleet${index}-`));
    this.#dirs.push(keysDir);
    const port = await freePort();
    this.balancing.ports[index] = port;
    const server = await startServerProcess({
      cwd: copy.dir,
      port,
      env: { PUBLIC_URL: this.proxy.url, KEYS_DIR: keysDir, ...env },
    });
    this.instances[index] = server;
    this.balancing.rotation.add(index);
    return index;
  }

  /** Out of rotation, then SIGTERM (graceful drain); resolves to the exit code. */
  async remove(index: number): Promise<number | null> {
    this.balancing.rotation.delete(index);
    await new Promise((r) => setTimeout(r, 300)); // requests already sent to it finish first
    return this.instances[index]!.stop();
  }

  /** Out of rotation, stopped, restarted with `env` changes, back in once ready. */
  async restart(index: number, env: Record<string, string | undefined>): Promise<number | null> {
    const code = await this.remove(index);
    this.instances[index]!.setEnv(env);
    await this.instances[index]!.start();
    this.balancing.rotation.add(index);
    return code;
  }

  async readyz(index: number): Promise<Record<string, unknown>> {
    return (await (await send(`${this.instances[index]!.url}/readyz`)).json()) as Record<string, unknown>;
  }

  async close(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.stop().catch(() => null)));
    await this.proxy.close().catch(() => {});
    for (const c of this.#copies) c.remove();
    for (const d of this.#dirs) rmSync(d, { recursive: true, force: true });
  }
}

export interface LaunchLoad {
  launches(): number;
  failures: string[];
  /** Resolves once `n` more launches succeeded (or one failed). */
  more(n: number): Promise<void>;
  stop(): Promise<void>;
}

/** Every demo clinician launching in a loop through `publicUrl`; each launch fully checked. */
export function launchLoad(
  publicUrl: string,
  discovery: Discovery,
  setup: DeploymentSetup,
  expectedSek: string,
): LaunchLoad {
  const sekB64 = Buffer.from(expectedSek, 'utf8').toString('base64');
  const failures: string[] = [];
  let launches = 0;
  let stopping = false;
  const loop = async (who: number) => {
    const { username, password } = DEMO_CLINICIANS[who]!;
    const clinician = new Clinician(publicUrl);
    await clinician.signIn(username, password);
    for (let n = 0; !stopping; n++) {
      const patient = setup.patients[(n + who) % setup.patients.length]!;
      try {
        const launch = await clinician.launch(patient, DEMO_SITE, 'viewMap');
        const { code } = await clinician.authorize(discovery, {
          clientId: setup.clientId,
          redirectUri: setup.redirectUri,
          launch: launch.get('launch')!,
          pkce: false,
        });
        const token = await redeemCode(discovery, {
          code,
          clientId: setup.clientId,
          redirectUri: setup.redirectUri,
        });
        if (token.status !== 200) throw new Error(`token ${token.status} ${JSON.stringify(token.body)}`);
        if (token.body.patient !== patient) throw new Error('wrong patient');
        if (token.body.oceanSharedEncryptionKey !== sekB64)
          throw new Error('wrong SEK in the token response');
        if (jwtPayload(token.body.access_token).oceanSharedEncryptionKey !== sekB64)
          throw new Error('wrong SEK in the access token');
        launches++;
      } catch (err) {
        failures.push(`${username} launch ${n}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 200)); // a failing deployment is not hammered
      }
    }
  };
  const loops = DEMO_CLINICIANS.map((_, who) =>
    loop(who).catch((err: unknown) => {
      failures.push(`clinician ${who}: ${(err as Error).message}`);
    }),
  );
  return {
    launches: () => launches,
    failures,
    async more(n) {
      const target = launches + n;
      while (launches < target && failures.length === 0) await new Promise((r) => setTimeout(r, 50));
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}
