/*
 * Streams a FHIR Bundle: its top-level scalar fields and its entries one at a time, so a bundle
 * of tens of thousands of entries is never held in memory whole.
 * - tokens from stream-json's parser; each `entry[i]` assembled on its own
 * - anything that is not a JSON object at the top level is an error with a clear message
 */
import type { Readable } from 'node:stream';
import { parser } from 'stream-json';
import Assembler from 'stream-json/assembler.js';

export type BundlePart =
  | { kind: 'field'; key: string; value: unknown }
  | { kind: 'entry'; index: number; value: unknown };

export class BundleSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleSyntaxError';
  }
}

interface Token {
  name: string;
  value?: unknown;
}

export async function* readBundle(input: Readable): AsyncGenerator<BundlePart> {
  const tokens = input.pipe(parser.asStream({ streamValues: false }));
  input.on('error', (err) => tokens.destroy(err));
  let depth = 0;
  let key: string | undefined;
  let inEntries = false;
  let index = 0;
  let asm: Assembler | undefined;
  let skipDepth = 0;
  let sawTop = false;
  try {
    for await (const tok of tokens as AsyncIterable<Token>) {
      if (asm) {
        asm.consume(tok as never);
        if (asm.done) {
          yield { kind: 'entry', index: index++, value: asm.current };
          asm = undefined;
        }
        continue;
      }
      if (skipDepth > 0) {
        if (tok.name === 'startObject' || tok.name === 'startArray') skipDepth++;
        else if (tok.name === 'endObject' || tok.name === 'endArray') skipDepth--;
        continue;
      }
      if (depth === 0) {
        if (tok.name !== 'startObject' || sawTop)
          throw new BundleSyntaxError('the body must be one JSON object (a FHIR Bundle)');
        sawTop = true;
        depth = 1;
        continue;
      }
      if (inEntries) {
        if (tok.name === 'endArray') {
          inEntries = false;
        } else if (tok.name === 'startObject') {
          asm = new Assembler();
          asm.consume(tok as never);
        } else {
          // a non-object entry: report it with its position
          if (tok.name === 'startArray') {
            skipDepth = 1;
          }
          yield {
            kind: 'entry',
            index: index++,
            value: tok.name === 'startArray' ? [] : (tok.value ?? null),
          };
        }
        continue;
      }
      switch (tok.name) {
        case 'keyValue':
          key = String(tok.value);
          break;
        case 'startArray':
          if (key === 'entry') inEntries = true;
          else skipDepth = 1;
          break;
        case 'startObject':
          skipDepth = 1;
          break;
        case 'endObject':
          depth = 0;
          break;
        case 'stringValue':
        case 'numberValue':
          yield {
            kind: 'field',
            key: key ?? '',
            value: tok.name === 'numberValue' ? Number(tok.value) : tok.value,
          };
          break;
        case 'nullValue':
        case 'trueValue':
        case 'falseValue':
          yield {
            kind: 'field',
            key: key ?? '',
            value: tok.name === 'nullValue' ? null : tok.name === 'trueValue',
          };
          break;
      }
    }
  } catch (err) {
    if (err instanceof BundleSyntaxError) throw err;
    const message = (err as Error)?.message ?? '';
    if (/parser|JSON|token|unexpected/i.test(message))
      throw new BundleSyntaxError('the body is not valid JSON');
    throw err;
  }
  if (!sawTop || depth !== 0)
    throw new BundleSyntaxError('the body must be one complete JSON object (a FHIR Bundle)');
}
