/*
 * A page's byte budget, applied in the query: a listing page (search, $everything) holds at most
 * `count` resources and at most PAGE_BYTES of their text — at least one resource, however large.
 * - the range scan (ORDER BY seq, LIMIT count + 1) is wrapped so that each row carries the
 *   running total of its text's bytes, and its text only while within the budget: the text of a
 *   resource past the budget never leaves the database, so a page of large documents cannot
 *   fill the server's memory; the rows past it still tell that more remain (the next cursor)
 * - takeWithinBudget: the rows a page takes, and whether more remain
 */

/** How many bytes of resource text one page may hold. */
export const PAGE_BYTES = 4 * 2 ** 20;

/** What budgetedScan's rows carry besides the scanned columns. */
export interface BudgetedRow {
  /** Bytes of text of the rows up to this one, in this query. */
  running: unknown;
  /** NULL past the page's byte budget: the row only tells that more remain. */
  body: string | null;
}

/**
 * Wraps a range scan of fhir_resources: `columns` (unqualified names) are selected, `from` is
 * the rest of the scan (`FROM fhir_resources … WHERE … ORDER BY seq LIMIT …`, which must leave
 * `seq` among the columns' order). `budgetParam`: bytes the page may still take; `firstParam`:
 * true when the page holds nothing yet (its first row is taken however large).
 */
export const budgetedScan = (columns: string, from: string, budgetParam: string, firstParam: string) =>
  `SELECT ${columns}, running,
          CASE WHEN running <= ${budgetParam} OR (running = size AND ${firstParam}) THEN resource::text END AS body
     FROM (SELECT *, sum(size) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running
             FROM (SELECT ${columns}, resource, octet_length(resource::text) AS size ${from}) AS scanned) AS sized
    ORDER BY seq`;

/** The rows a page takes (those with their text, at most `max`), and whether rows remain after them. */
export function takeWithinBudget<R extends BudgetedRow>(
  rows: R[],
  max: number,
): { taken: (R & { body: string })[]; more: boolean } {
  let n = 0;
  while (n < rows.length && n < max && rows[n]!.body !== null) n++;
  return { taken: rows.slice(0, n) as (R & { body: string })[], more: rows.length > n };
}
