/*
 * The chart's Ocean buttons: one per configured Ocean site × action (CONTRACT §2 item 9, §3.2).
 * - only sites whose client has a launch URL get buttons (a site without one cannot be launched)
 * - each button is a link to /launch?patient&site&action; the launch itself is decided there
 */

import { listClients } from '../clients/clients.ts';
import type { AppContext } from '../context.ts';
import { listSites } from '../sites/sites.ts';

export interface OceanButton {
  label: string;
  href: string;
  action: string;
}

export interface OceanSiteButtons {
  siteNum: string;
  clientName: string;
  buttons: OceanButton[];
}

/** "Ocean Health Map" and "Health Map" both read "Ocean: Health Map". */
export function buttonLabel(label: string): string {
  return `Ocean: ${label.replace(/^Ocean:?\s+/i, '')}`;
}

export function launchHref(patientId: string, siteNum: string, action: string): string {
  const q = new URLSearchParams({ patient: patientId, site: siteNum, action });
  return `/launch?${q.toString()}`;
}

export async function oceanButtons(ctx: AppContext, patientId: string): Promise<OceanSiteButtons[]> {
  const clients = (await listClients(ctx)).filter((c) => c.launch_url);
  const groups: OceanSiteButtons[] = [];
  for (const client of clients) {
    for (const site of await listSites(ctx, client.client_id)) {
      if (site.actions.length === 0) continue;
      groups.push({
        siteNum: site.siteNum,
        clientName: client.name,
        buttons: site.actions.map((a) => ({
          label: buttonLabel(a.label),
          action: a.action,
          href: launchHref(patientId, site.siteNum, a.action),
        })),
      });
    }
  }
  return groups;
}
