/*
 * The HTML Ocean sends in a referral's note, made safe to show in the chart.
 * - an allow-list sanitizer (sanitize-html), not a regex: only harmless formatting survives —
 *   paragraphs, line breaks, emphasis, lists, simple tables, headings, links
 * - scripts, styles, event handlers, iframes, forms, images and every attribute except a link's
 *   href/title are removed; links only to http(s) and mailto, opened without an opener
 * - the page's strict CSP (script-src 'self', no inline style) is the second fence
 * - sanitize-html (and its HTML parser) is loaded at the first note shown, not at start: most
 *   starts never show one, and it is a sixth of the server's module-loading time
 */
import { createRequire } from 'node:module';
import type SanitizeHtml from 'sanitize-html';

let sanitizer: typeof SanitizeHtml | undefined;
const load = (): typeof SanitizeHtml =>
  (sanitizer ??= createRequire(import.meta.url)('sanitize-html') as typeof SanitizeHtml);

const options = (sanitizeHtml: typeof SanitizeHtml): SanitizeHtml.IOptions => ({
  allowedTags: [
    'p',
    'br',
    'b',
    'i',
    'strong',
    'em',
    'u',
    's',
    'sub',
    'sup',
    'small',
    'ul',
    'ol',
    'li',
    'dl',
    'dt',
    'dd',
    'blockquote',
    'pre',
    'code',
    'hr',
    'h3',
    'h4',
    'h5',
    'h6',
    'div',
    'span',
    'table',
    'thead',
    'tbody',
    'tfoot',
    'tr',
    'th',
    'td',
    'caption',
    'a',
  ],
  // A link keeps the rel and target the transform below gives it.
  allowedAttributes: {
    a: ['href', 'title', 'rel', 'target'],
    td: ['colspan', 'rowspan'],
    th: ['colspan', 'rowspan'],
  },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'discard',
  // Text inside removed <script>/<style>/<textarea> blocks is dropped, not shown as text.
  nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title'],
  transformTags: {
    a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer nofollow', target: '_blank' }),
  },
});
let OPTIONS: SanitizeHtml.IOptions | undefined;

/** Safe HTML for the chart; plain text (no tags) comes back escaped. */
export function sanitizeNote(html: string): string {
  const sanitizeHtml = load();
  OPTIONS ??= options(sanitizeHtml);
  return sanitizeHtml(html.slice(0, 200_000), OPTIONS);
}
