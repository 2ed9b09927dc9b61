/*
 * The URL a launch sends the browser to, and the shape of what names it: one definition for the
 * launch from our own screens (./index.ts) and the one an EHR system asks for (src/ehr-api/).
 */

/** An Ocean site number. */
export const SITE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** An Ocean action (viewMap, referDirect, … or any string an administrator added). */
export const ACTION_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/** `{launch_url}` with the launch parameters set (existing query members kept, ours win). */
export function launchRedirectUrl(
  launchUrl: string,
  p: { siteNum: string; action: string; iss: string; launch: string },
): string {
  const url = new URL(launchUrl);
  url.searchParams.set('siteNum', p.siteNum);
  url.searchParams.set('action', p.action);
  url.searchParams.set('iss', p.iss);
  url.searchParams.set('launch', p.launch);
  return url.toString();
}
