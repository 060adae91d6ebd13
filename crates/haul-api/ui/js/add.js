// The add form: one download per URL line, with the options the API takes; each error the API answers is
// shown beside the field it is about, in the API's words.

import { api } from './api.js';
import { $, announce, showError } from './page.js';

// Fields of the form by the API's name for them, as the API's messages name them.
const FIELDS = {
  urls: 'add-urls',
  kind: 'add-kind',
  quality: 'add-quality',
  filename: 'add-filename',
  connections: 'add-connections',
  speed_limit: 'add-speed',
  priority: 'add-priority',
  directory: 'add-directory',
  checksum: 'add-checksum',
  headers: 'add-headers',
};
const NAMED = /\b(url|mirrors|filename|directory|checksum|headers?|connections|speed_limit|priority|quality|kind)\b/;

// Which field an API error is about.
function fieldOf(error) {
  if (error.code === 'destination_refused' || error.code === 'unsupported_url') return 'urls';
  const named = NAMED.exec(error.message);
  if (!named) return null;
  const word = named[1];
  if (word === 'url' || word === 'mirrors') return 'urls';
  if (word === 'header') return 'headers';
  return word;
}

function clearErrors() {
  for (const [name, id] of Object.entries(FIELDS)) showError(`add-${name}-error`, '', $(id));
  showError('add-error', '');
}

function fail(name, message) {
  showError(`add-${name}-error`, message, $(FIELDS[name]));
  $(FIELDS[name]).focus();
}

// The request body from the form, without the URL; or null after showing why it cannot be sent.
function options(urlCount) {
  const body = {};
  const kind = $('add-kind').value;
  if (kind !== 'auto') body.kind = kind;
  const quality = $('add-audio').checked ? 'audio' : $('add-quality').value;
  if (quality !== 'best') body.quality = quality;
  const filename = $('add-filename').value.trim();
  if (filename) {
    if (urlCount > 1) return fail('filename', 'A file name is for one URL; leave it empty to add several.');
    body.filename = filename;
  }
  for (const name of ['connections', 'priority']) {
    const input = $(FIELDS[name]);
    if (!input.validity.valid) return fail(name, input.validationMessage);
    if (input.value !== '') body[name] = Number(input.value);
  }
  const speed = $('add-speed').value.trim();
  if (speed) body.speed_limit = /^\d+$/.test(speed) ? Number(speed) : speed;
  if ($('add-paused').checked) body.paused = true;
  for (const name of ['directory', 'checksum']) {
    const value = $(FIELDS[name]).value.trim();
    if (value) body[name] = value;
  }
  const headers = {};
  for (const [index, line] of $('add-headers').value.split('\n').entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon < 1) return fail('headers', `Line ${index + 1} is not "Name: value": ${line.trim()}`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  if (Object.keys(headers).length) body.headers = headers;
  return body;
}

export function init({ added }) {
  const form = $('add-form');
  $('add-audio').addEventListener('change', (event) => ($('add-quality').disabled = event.target.checked));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors();
    const urls = $('add-urls').value.split('\n').map((line) => line.trim()).filter(Boolean);
    if (!urls.length) return fail('urls', 'Enter a URL to download.');
    const body = options(urls.length);
    if (!body) return;
    const submit = $('add-submit');
    submit.disabled = true;
    const failures = [];
    let count = 0;
    // One at a time, so the downloads are created in the order of the lines.
    for (const url of urls) {
      try {
        await api('POST', '/v1/downloads', { ...body, url });
        count += 1;
      } catch (error) {
        failures.push({ url, error });
      }
    }
    submit.disabled = false;
    $('add-urls').value = failures.map((failure) => failure.url).join('\n');
    if (count) {
      announce(`Added ${count} download${count === 1 ? '' : 's'}`);
      added();
    }
    if (!failures.length) return;
    const byField = new Map();
    for (const { url, error } of failures) {
      const field = fieldOf(error) || (failures.length > 1 || urls.length > 1 ? 'urls' : null);
      const text = field === 'urls' && urls.length > 1 ? `${url}: ${error.message}` : error.message;
      const lines = byField.get(field) || [];
      if (!lines.includes(text)) lines.push(text);
      byField.set(field, lines);
    }
    for (const [field, lines] of byField) {
      if (field) showError(`add-${field}-error`, lines.join('\n'), $(FIELDS[field]));
      else showError('add-error', lines.join('\n'));
    }
    const first = [...byField.keys()].find(Boolean);
    (first ? $(FIELDS[first]) : $('add-urls')).focus();
    if (count) showError('add-error', `Added ${count}; the URLs left in the box were not added.`);
  });
}
