/*
 * Streams a FHIR Bundle: its top-level scalar members and its entries one at a time, so a bundle
 * of tens of thousands of entries is never held in memory whole.
 * - a byte-level scanner (strings, escapes, bracket nesting) cuts the text of each `entry[i]`
 *   and each other top-level member; each piece is then parsed by JSON.parse. Only one piece is
 *   held at a time, and the scan is as fast as reading the bytes (a token-by-token JSON parser
 *   such as stream-json costs ~80 times JSON.parse here, seconds per large bundle)
 * - malformed JSON anywhere — bad nesting, trailing text, a broken entry — is a BundleSyntaxError
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export type BundlePart =
  | { kind: 'field'; key: string; value: unknown }
  | { kind: 'entry'; index: number; value: unknown };

export class BundleSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleSyntaxError';
  }
}

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const COMMA = 44;
const ENTRY_KEY = /^\s*"entry"\s*:\s*$/;
const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

export async function* readBundle(input: Readable): AsyncGenerator<BundlePart> {
  const decoder = new StringDecoder('utf8');
  const stack: number[] = []; // open brackets
  let inString = false;
  let escaped = false;
  let sawTop = false;
  let closed = false;
  let inEntries = false;
  let entryMember = false; // the current depth-1 member is "entry" (streamed, not captured)
  let index = 0;
  // text kept from earlier chunks, and capture starts relative to `text`
  let carry = '';
  let memberStart = -1;
  let elementStart = -1;
  let first = true;

  function* member(text: string, end: number): Generator<BundlePart> {
    const raw = text.slice(memberStart, end).trim();
    if (entryMember) {
      entryMember = false;
      return;
    }
    if (raw === '') {
      if (!(end > 0 && stack.length === 0))
        throw new BundleSyntaxError('the body is not valid JSON (empty member)');
      return;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(`{${raw}}`) as Record<string, unknown>;
    } catch {
      throw new BundleSyntaxError('the body is not valid JSON');
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (value === null || typeof value !== 'object') yield { kind: 'field', key, value };
    }
  }

  function element(text: string, end: number, last: boolean): BundlePart | undefined {
    const raw = text.slice(elementStart, end).trim();
    if (raw === '') {
      if (last && index === 0) return undefined; // "entry": []
      throw new BundleSyntaxError(`Bundle.entry[${index}] is missing (stray comma)`);
    }
    try {
      return { kind: 'entry', index: index++, value: JSON.parse(raw) };
    } catch {
      throw new BundleSyntaxError(`Bundle.entry[${index}] is not valid JSON`);
    }
  }

  const process = function* (chunk: string): Generator<BundlePart> {
    const text = carry + chunk;
    let i = carry.length;
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) i = 1; // byte-order mark
    }
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
        continue;
      }
      if (closed) {
        if (!isSpace(c))
          throw new BundleSyntaxError('the body must be one JSON object (a FHIR Bundle); text follows it');
        continue;
      }
      if (stack.length === 0) {
        if (isSpace(c)) continue;
        if (c !== OPEN_OBJECT || sawTop)
          throw new BundleSyntaxError('the body must be one JSON object (a FHIR Bundle)');
        sawTop = true;
        stack.push(c);
        memberStart = i + 1;
        continue;
      }
      switch (c) {
        case QUOTE:
          inString = true;
          break;
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          if (stack.length === 1 && c === OPEN_ARRAY && ENTRY_KEY.test(text.slice(memberStart, i))) {
            inEntries = true;
            entryMember = true;
            elementStart = i + 1;
          }
          stack.push(c);
          break;
        case CLOSE_OBJECT:
        case CLOSE_ARRAY: {
          const open = stack.pop();
          if ((c === CLOSE_OBJECT && open !== OPEN_OBJECT) || (c === CLOSE_ARRAY && open !== OPEN_ARRAY)) {
            throw new BundleSyntaxError('the body is not valid JSON (brackets do not match)');
          }
          if (inEntries && stack.length === 1) {
            const part = element(text, i, true);
            if (part) yield part;
            inEntries = false;
          } else if (stack.length === 0) {
            yield* member(text, i);
            closed = true;
          }
          break;
        }
        case COMMA:
          if (inEntries && stack.length === 2) {
            const part = element(text, i, false);
            if (part) yield part;
            elementStart = i + 1;
          } else if (stack.length === 1) {
            yield* member(text, i);
            memberStart = i + 1;
          }
          break;
      }
    }
    // keep only what a capture still needs
    const keepFrom = inEntries ? elementStart : stack.length >= 1 && !entryMember ? memberStart : text.length;
    const from = Math.max(0, Math.min(keepFrom, text.length));
    carry = text.slice(from);
    if (memberStart >= 0) memberStart -= from;
    if (elementStart >= 0) elementStart -= from;
  };

  for await (const chunk of input) {
    yield* process(typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer));
  }
  yield* process(decoder.end());
  if (!sawTop) throw new BundleSyntaxError('the body must be one JSON object (a FHIR Bundle)');
  if (!closed || inString) throw new BundleSyntaxError('the body is not valid JSON (it ends too early)');
}
