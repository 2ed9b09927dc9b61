/*
 * The SMART style document (SMART App Launch 2.2 §"Styling"): colours and fonts an embedded app
 * may use to look at home in the EHR. Served as JSON, readable cross-origin; its URL is the
 * token response's `smart_style_url`.
 */
import type { RequestHandler } from 'express';
import type { Config } from '../config.ts';

export const SMART_STYLE_PATH = '/smart-style.json';

export const smartStyleUrl = (config: Config): string => `${config.publicUrl}${SMART_STYLE_PATH}`;

/** Matches public/app.css, the EHR's own look. */
export const SMART_STYLE = {
  color_background: '#f6f8fa',
  color_error: '#b3261e',
  color_highlight: '#0b6bcb',
  color_modal_backdrop: 'rgba(0, 0, 0, 0.4)',
  color_success: '#1e7e34',
  color_text: '#1f2328',
  dim_border_radius: '6px',
  dim_font_size: '14px',
  dim_spacing_size: '16px',
  font_family_body: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  font_family_heading: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
} as const;

export const smartStyleHandler: RequestHandler = (_req, res) => {
  res.set('Access-Control-Allow-Origin', '*');
  res.set('Cache-Control', 'public, max-age=3600');
  res.json(SMART_STYLE);
};
