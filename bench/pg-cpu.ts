/*
 * CPU time of the PostgreSQL backends serving one database, for "PostgreSQL CPU per request".
 * - the backends are found by `pg_stat_activity.datname` (the bench creates its own database, so
 *   every backend of it serves the bench); the query runs on a connection to ANOTHER database, so
 *   the meter's own backend is not counted
 * - each backend's utime + stime is read from /proc/<pid>/stat (the server must run on this host;
 *   otherwise the meter reports NaN rather than a wrong figure)
 * - sampled every 250 ms during a phase, so a backend that starts during the phase counts from
 *   zero and one that exits counts up to its last sample; shared processes (WAL writer,
 *   checkpointer, background writer) are not counted — the figure is a floor of PostgreSQL's cost
 */
import pg from 'pg';
import { cpuSeconds } from './processes.ts';

export interface PgCpuMeter {
  /** Starts a phase; the returned function ends it and gives the backends' CPU seconds in it. */
  start(): Promise<() => Promise<number>>;
  close(): Promise<void>;
}

export async function pgCpuMeter(adminUrl: string, dbName: string): Promise<PgCpuMeter> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const pids = async () =>
    (
      await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [dbName])
    ).rows.map((r) => r.pid);
  return {
    async start() {
      const first = new Map<number, number>();
      const last = new Map<number, number>();
      let unreadable = false;
      const sample = async (initial: boolean) => {
        for (const pid of await pids()) {
          const cpu = cpuSeconds(pid);
          if (Number.isNaN(cpu)) {
            unreadable = true;
            continue;
          }
          if (!first.has(pid)) first.set(pid, initial ? cpu : 0);
          last.set(pid, cpu);
        }
      };
      await sample(true);
      let sampling = Promise.resolve();
      const timer = setInterval(() => {
        sampling = sampling.then(() => sample(false)).catch(() => {});
      }, 250);
      return async () => {
        clearInterval(timer);
        await sampling;
        await sample(false);
        if (unreadable || first.size === 0) return Number.NaN;
        let total = 0;
        for (const [pid, cpu] of last) total += cpu - (first.get(pid) ?? 0);
        return total;
      };
    },
    close: () => admin.end(),
  };
}
