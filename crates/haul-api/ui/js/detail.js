// The detail view of one download: everything the API says about it, its URL and priority to change, its
// actions, the finished file played in the page, the audio rendition, a signed link, and the events seen.

import { api, jobPath, ApiError } from './api.js';
import * as fmt from './format.js';
import { $, announce, showError, copy } from './page.js';
import { allowed, act, remove, confirmRemove, DONE_WORDS } from './jobs.js';

// The events this page has seen per download, newest last; progress events collapse into one line.
const seen = new Map();
const SEEN_PER_JOB = 30;
const SEEN_JOBS = 500;

let dialog;
let current = null;
let audioTimer = 0;
let transferTimer = 0;
let onChange = () => {};

export function init(options) {
  dialog = $('detail');
  onChange = options.changed;
  dialog.addEventListener('close', () => {
    current = null;
    clearTimeout(audioTimer);
    clearTimeout(transferTimer);
    // Stops playback: a closed dialog keeps its elements.
    $('detail-player').replaceChildren();
    $('audio-player').replaceChildren();
  });
  for (const button of document.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => button.closest('dialog').close());
  }
  $('detail-actions').addEventListener('click', onAction);
  $('url-form').addEventListener('submit', (event) => {
    event.preventDefault();
    changeUrl();
  });
  // A priority being typed is not overwritten by the next event's.
  $('detail-priority').addEventListener('input', (event) => (event.target.dataset.dirty = 'yes'));
  $('priority-form').addEventListener('submit', (event) => {
    event.preventDefault();
    changePriority();
  });
  $('audio-make').addEventListener('click', makeAudio);
  $('link-file').addEventListener('click', () => signedLink('file'));
  $('link-audio').addEventListener('click', () => signedLink('audio'));
}

export function record(kind, download) {
  let events = seen.get(download.id);
  if (!events) {
    if (seen.size >= SEEN_JOBS) seen.delete(seen.keys().next().value);
    events = [];
    seen.set(download.id, events);
  }
  const line = { kind, at: Date.now(), state: download.state, done: download.bytes_done, error: download.error };
  if (kind === 'progress' && events.length && events[events.length - 1].kind === 'progress') {
    events[events.length - 1] = line;
  } else {
    events.push(line);
    if (events.length > SEEN_PER_JOB) events.shift();
  }
  if (current && current.id === download.id) {
    current = download;
    fill();
    if (kind !== 'progress') transfer();
  }
}

export async function open(download, { play = false } = {}) {
  current = download;
  for (const id of ['detail-url-error', 'detail-priority-error', 'detail-error']) showError(id, '');
  $('link-box').hidden = true;
  $('audio-state').textContent = '';
  $('detail-transfer').replaceChildren();
  $('detail-url').value = download.url;
  $('detail-priority').value = download.priority;
  delete $('detail-priority').dataset.dirty;
  fill();
  dialog.showModal();
  if (play) player();
  try {
    current = await api('GET', jobPath(download.id));
    fill();
    transfer();
    if (fmt.playable(current) === 'video') await audioState();
  } catch (error) {
    showError('detail-error', error.message);
  }
}

const fact = (list, label, value) => {
  if (value === null || value === undefined || value === '') return;
  const dt = document.createElement('dt');
  dt.textContent = label;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.push(dt, dd);
};

function fill() {
  const d = current;
  if (!d) return;
  $('detail-title').textContent = fmt.name(d);
  const facts = [];
  fact(facts, 'State', fmt.STATE_WORDS[d.state] || d.state);
  fact(facts, 'Error', d.error);
  fact(facts, 'URL', d.url);
  fact(facts, 'Mirrors', d.mirrors && d.mirrors.join('\n'));
  fact(facts, 'Kind', d.kind);
  if (d.playlist) {
    const p = d.playlist;
    const counts = `${p.entries} entries: ${p.completed} completed, ${p.failed} failed, ${p.cancelled} cancelled`;
    fact(facts, 'Playlist', p.items ? `${counts} (items ${p.items})` : counts);
  }
  if (d.parent) fact(facts, 'Entry', `${d.playlist_index} of playlist ${d.parent}`);
  if (d.kind !== 'file') fact(facts, 'Quality', d.quality);
  fact(facts, 'Format', d.format);
  if (d.width && d.height) fact(facts, 'Picture', `${d.width} × ${d.height}`);
  if (d.duration) fact(facts, 'Duration', fmt.duration(d.duration));
  fact(facts, 'Size', d.size ? `${fmt.bytes(d.size)} (${d.size.toLocaleString()} bytes)` : 'not known yet');
  const percent = fmt.percent(d);
  fact(facts, 'Done', `${fmt.bytes(d.bytes_done)}${percent === null ? '' : ` (${percent} %)`}`);
  if (d.state === 'active') {
    fact(facts, 'Speed', fmt.rate(d.speed));
    fact(facts, 'Time left', fmt.duration(d.eta_secs));
    fact(facts, 'Connections', String(d.connections));
  }
  fact(facts, 'Saved as', d.path || [d.directory, d.filename].filter(Boolean).join('/'));
  fact(facts, 'Checksum', d.checksum);
  const headers = Object.entries(d.headers || {});
  if (headers.length) fact(facts, 'Headers', headers.map(([name, value]) => `${name}: ${value}`).join('\n'));
  fact(facts, 'Connections at most', d.connections_limit && String(d.connections_limit));
  fact(facts, 'Speed limit', d.speed_limit && fmt.rate(d.speed_limit));
  fact(facts, 'Priority', String(d.priority));
  fact(facts, 'Added', fmt.date(d.created_at));
  fact(facts, 'Started', fmt.date(d.started_at));
  fact(facts, 'Finished', fmt.date(d.finished_at));
  fact(facts, 'Id', d.id);
  $('detail-facts').replaceChildren(...facts);

  const url = $('detail-url');
  const editable = d.state === 'paused' || d.state === 'failed';
  url.readOnly = !editable;
  $('url-form').querySelector('button').disabled = !editable;
  if (document.activeElement !== url && !editable) url.value = d.url;
  const priority = $('detail-priority');
  if (document.activeElement !== priority && priority.dataset.dirty !== 'yes') priority.value = d.priority;

  for (const button of $('detail-actions').querySelectorAll('[data-act]')) {
    const action = button.dataset.act;
    button.hidden = action === 'play' ? !fmt.playable(d) : !allowed(action, d.state);
  }
  const done = d.state === 'completed';
  const link = $('detail-actions').querySelector('.download');
  link.hidden = !done;
  if (done) link.href = `${jobPath(d.id)}/file`;
  $('detail-finished').hidden = !done;
  $('audio-make').hidden = fmt.playable(d) !== 'video';

  const events = (seen.get(d.id) || []).map((line) => {
    const li = document.createElement('li');
    const time = new Date(line.at).toLocaleTimeString();
    const extra = line.kind === 'progress' ? ` ${fmt.bytes(line.done)}` : line.error ? `: ${line.error}` : '';
    li.textContent = `${time} ${line.kind}${extra}`;
    return li;
  });
  if (!events.length) {
    const li = document.createElement('li');
    li.textContent = 'None since this page was opened.';
    events.push(li);
  }
  $('detail-events').replaceChildren(...events);
}

// The resume record: the validators a resumed fetch must match and the byte ranges on disk; read again every
// 2 s while the download runs.
async function transfer() {
  clearTimeout(transferTimer);
  if (!current) return;
  const id = current.id;
  let record;
  try {
    record = await api('GET', `${jobPath(id)}/transfer`);
  } catch {
    return;
  }
  if (!current || current.id !== id) return;
  const facts = [];
  if (record.resumable) {
    fact(facts, 'ETag', record.etag);
    fact(facts, 'Last-Modified', record.last_modified);
    const ranges = record.done.map(([start, end]) => `${fmt.bytes(start)} – ${fmt.bytes(end)}`);
    const more = ranges.length > 8 ? ` and ${ranges.length - 8} more` : '';
    const on = record.done.reduce((n, [start, end]) => n + end - start, 0);
    fact(facts, 'On disk', `${fmt.bytes(on)} in ${ranges.length} range${ranges.length === 1 ? '' : 's'}`);
    if (ranges.length) fact(facts, 'Ranges', ranges.slice(0, 8).join(', ') + more);
  }
  $('detail-transfer').replaceChildren(...facts);
  if (current.state === 'active') transferTimer = setTimeout(transfer, 2000);
}

// Puts a <video> or <audio> of the finished file at the top of the dialog.
function player() {
  const kind = fmt.playable(current);
  if (!kind) return;
  const box = $('detail-player');
  const media = document.createElement(kind);
  media.controls = true;
  media.preload = 'metadata';
  media.src = `${jobPath(current.id)}/file`;
  media.setAttribute('aria-label', `Play ${fmt.name(current)}`);
  box.replaceChildren(media);
  box.hidden = false;
  media.focus();
}

async function onAction(event) {
  const target = event.target.closest('[data-act]');
  if (!target || !current) return;
  const d = current;
  const action = target.dataset.act;
  showError('detail-error', '');
  if (action === 'play') return player();
  try {
    if (action === 'remove') {
      const answer = await confirmRemove(`“${fmt.name(d)}”`, d.state === 'completed');
      if (!answer) return;
      await remove(d.id, answer.deleteFiles);
      announce(`Removed ${fmt.name(d)}${answer.deleteFiles ? ' and its file' : ''}`);
      dialog.close();
      onChange();
      return;
    }
    current = await act(action, d.id);
    announce(`${DONE_WORDS[action]}: ${fmt.name(d)}`);
    fill();
    onChange(current);
    if (target.hidden) $('detail-actions').querySelector('[data-act]:not([hidden])')?.focus();
  } catch (error) {
    showError('detail-error', error.message);
  }
}

async function changeUrl() {
  const input = $('detail-url');
  const url = input.value.trim();
  if (!url) return showError('detail-url-error', 'Enter the new URL.', input);
  showError('detail-url-error', '', input);
  try {
    current = await api('PATCH', jobPath(current.id), { url });
    announce('URL changed');
    fill();
    onChange(current);
  } catch (error) {
    showError('detail-url-error', error.message, input);
  }
}

async function changePriority() {
  const input = $('detail-priority');
  if (!input.validity.valid || input.value === '') {
    return showError('detail-priority-error', input.validationMessage || 'Enter a whole number.', input);
  }
  showError('detail-priority-error', '', input);
  try {
    current = await api('PATCH', jobPath(current.id), { priority: Number(input.value) });
    delete input.dataset.dirty;
    announce(`Priority set to ${current.priority}`);
    fill();
    onChange(current);
  } catch (error) {
    showError('detail-priority-error', error.message, input);
  }
}

const audioPath = () => `${jobPath(current.id)}/renditions/audio`;

// Shows the audio rendition's state, and polls it while it is being made.
async function audioState() {
  clearTimeout(audioTimer);
  if (!current) return;
  let rendition;
  try {
    rendition = await api('GET', audioPath());
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $('audio-state').textContent = '';
      return;
    }
    $('audio-state').textContent = error.message;
    return;
  }
  showAudio(rendition);
}

function showAudio(rendition) {
  const state = $('audio-state');
  $('link-audio').hidden = rendition.state !== 'ready';
  $('audio-make').disabled = rendition.state !== 'failed';
  if (rendition.state === 'ready') {
    state.textContent = 'The audio file is ready.';
    const box = $('audio-player');
    if (!box.childElementCount) {
      const audio = document.createElement('audio');
      audio.controls = true;
      audio.preload = 'metadata';
      audio.src = rendition.file;
      audio.setAttribute('aria-label', 'Play the audio file');
      const link = document.createElement('a');
      link.className = 'button';
      link.href = rendition.file;
      link.download = '';
      link.textContent = 'Download the audio file';
      box.replaceChildren(audio, link);
    }
    box.hidden = false;
  } else if (rendition.state === 'failed') {
    state.textContent = `The audio file could not be made: ${rendition.error || 'unknown error'}`;
  } else {
    state.textContent = `Making the audio file: ${Math.round(rendition.percent || 0)} %`;
    audioTimer = setTimeout(audioState, 1000);
  }
}

async function makeAudio() {
  $('audio-make').disabled = true;
  try {
    showAudio(await api('POST', audioPath()));
  } catch (error) {
    $('audio-make').disabled = false;
    $('audio-state').textContent = error.message;
  }
}

async function signedLink(variant) {
  const note = $('link-note');
  try {
    const link = await api('POST', `${jobPath(current.id)}/link`, { variant });
    const url = new URL(link.url, location.href).href;
    const out = $('link-out');
    out.value = url;
    $('link-box').hidden = false;
    const until = link.expires_at ? ` It works without signing in until ${fmt.date(link.expires_at * 1000)}.` : '';
    const copied = await copy(url);
    note.textContent = (copied ? 'Copied.' : 'Select the link and copy it.') + until;
    if (!copied) {
      out.focus();
      out.select();
    }
  } catch (error) {
    showError('detail-error', error.message);
  }
}
