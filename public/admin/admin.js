/*
 * Admin console behaviour (a static file: the CSP allows no inline script).
 * - [data-copy="#id"] buttons copy the text (or textarea value) of the element named
 * - forms with data-confirm ask first
 * - the PKCE switch shows its warning when turned off
 * - the import form uploads the chosen file with XHR (progress bar) and summarises the answer
 */
'use strict';

function copyText(target) {
  const text = 'value' in target && typeof target.value === 'string' ? target.value : target.textContent;
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // http:// (not a secure context): select and use the legacy command.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error('copy refused'));
}

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const target = document.querySelector(button.getAttribute('data-copy'));
  if (!target) return;
  const label = button.textContent;
  copyText(target).then(
    () => {
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = label), 2000);
    },
    () => {
      if (target.select) target.select();
      button.textContent = 'Press Ctrl+C';
      setTimeout(() => (button.textContent = label), 3000);
    },
  );
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  const question = form.getAttribute('data-confirm');
  if (question && !window.confirm(question)) event.preventDefault();
});

for (const box of document.querySelectorAll('[data-pkce-switch]')) {
  const warning = document.getElementById('pkce-warning');
  box.addEventListener('change', () => {
    if (warning) warning.hidden = box.checked;
  });
}

const importForm = document.getElementById('import-form');
if (importForm) {
  const fileInput = document.getElementById('bundle');
  const button = document.getElementById('import-button');
  const progressBox = importForm.querySelector('.import-progress');
  const progress = document.getElementById('import-progress');
  const progressText = document.getElementById('import-progress-text');
  const result = document.getElementById('import-result');
  const resultTitle = document.getElementById('import-result-title');
  const resultBody = document.getElementById('import-result-body');

  const show = (title, lines, ok) => {
    result.hidden = false;
    result.className = `card section ${ok ? 'result-ok' : 'result-error'}`;
    resultTitle.textContent = title;
    resultBody.replaceChildren();
    const list = document.createElement('ul');
    for (const line of lines) {
      const li = document.createElement('li');
      li.textContent = line;
      list.appendChild(li);
    }
    resultBody.appendChild(list);
  };

  const summarise = (bundle) => {
    const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
    const byStatus = new Map();
    const byType = new Map();
    for (const e of entries) {
      const status = (e.response && e.response.status) || 'unknown';
      byStatus.set(status, (byStatus.get(status) || 0) + 1);
      const location = (e.response && e.response.location) || '';
      const type = location.split('/')[0] || 'other';
      byType.set(type, (byType.get(type) || 0) + 1);
    }
    const lines = [`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} processed.`];
    for (const [status, n] of byStatus) lines.push(`${n} × ${status}`);
    const types = [...byType].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ${n}`).join(', ');
    if (types) lines.push(`By type: ${types}`);
    return lines;
  };

  importForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      show('Nothing imported', ['Choose a bundle file first.'], false);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open('POST', importForm.getAttribute('action'));
    xhr.setRequestHeader('Content-Type', 'application/fhir+json');
    xhr.setRequestHeader('X-CSRF-Token', importForm.getAttribute('data-csrf'));
    xhr.setRequestHeader('Accept', 'application/fhir+json');
    progressBox.hidden = false;
    progress.removeAttribute('value');
    progress.value = 0;
    button.disabled = true;
    result.hidden = true;
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((e.loaded / e.total) * 100);
      progress.value = pct;
      progressText.textContent = `Uploading… ${pct}% of ${(e.total / 1048576).toFixed(1)} MB`;
    });
    xhr.upload.addEventListener('load', () => {
      progress.removeAttribute('value'); // indeterminate while the server imports
      progressText.textContent = 'Uploaded. Importing in one transaction…';
    });
    xhr.addEventListener('load', () => {
      button.disabled = false;
      progressBox.hidden = true;
      let body;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        show(`Imported ${file.name}`, summarise(body), true);
        return;
      }
      const why =
        body && Array.isArray(body.issue)
          ? body.issue.map((i) => i.diagnostics || i.code).filter(Boolean)
          : [body && (body.error_description || body.error) ? body.error_description || body.error : `HTTP ${xhr.status}`];
      show('Nothing was imported', why, false);
    });
    xhr.addEventListener('error', () => {
      button.disabled = false;
      progressBox.hidden = true;
      show('Nothing was imported', ['The upload failed (network error or the server closed the connection).'], false);
    });
    xhr.send(file);
  });
}
