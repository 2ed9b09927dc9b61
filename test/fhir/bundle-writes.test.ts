import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { sendBundle } from '../../src/fhir/fhir-http.ts';

/** An app whose one route sends `count` entries through sendBundle, recording the size of each write. */
function bundleApp(count: number, writes: number[]) {
  const app = express();
  app.get('/', (_req, res) => {
    const write = res.write.bind(res);
    res.write = ((chunk: string, ...rest: never[]) => {
      writes.push(chunk.length);
      return write(chunk, ...rest);
    }) as typeof res.write;
    const entries = Array.from(
      { length: count },
      (_, i) =>
        `{"resource":{"resourceType":"Observation","id":"o${i}","note":[{"text":"é ${'x'.repeat(400)}"}]}}`,
    );
    sendBundle(res, '"resourceType":"Bundle","type":"searchset"', entries);
  });
  return app;
}

describe('a Bundle leaves in writes of about 64 KiB', () => {
  it('a large page is a whole Bundle, every entry once, in order, sent in bounded writes', async () => {
    const writes: number[] = [];
    const res = await request(bundleApp(1000, writes)).get('/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
    const bundle = JSON.parse(res.text) as { type: string; entry: { resource: { id: string } }[] };
    expect(bundle.type).toBe('searchset');
    expect(bundle.entry.map((e) => e.resource.id)).toEqual(Array.from({ length: 1000 }, (_, i) => `o${i}`));
    // ~450 kB in several writes, none much larger than 64 KiB (one entry more at most)
    expect(writes.length).toBeGreaterThan(4);
    for (const size of writes) expect(size).toBeLessThan(64 * 1024 + 500);
  });

  it('an empty page and a one-entry page are whole Bundles', async () => {
    for (const count of [0, 1]) {
      const res = await request(bundleApp(count, [])).get('/');
      expect(res.status).toBe(200);
      expect((JSON.parse(res.text) as { entry: unknown[] }).entry).toHaveLength(count);
    }
  });
});
