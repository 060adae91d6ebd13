// The list of downloads: one page of the server's list at a time (so thousands of jobs cost one page of
// rows), filtered, searched and ordered by the server; rows are kept by id and updated in place, and live
// events are coalesced to one DOM update per animation frame.

import { api, query, jobPath } from './api.js';
import * as fmt from './format.js';
import { $, announce, each } from './page.js';
import { allowed, act, remove, confirmRemove, DONE_WORDS } from './jobs.js';

const view = { state: '', search: '', order: 'newest', offset: 0, limit: 100 };
const rows = new Map();
const picked = new Set();
let list;
let template;
let total = 0;
let loadSeq = 0;
let pending = new Map();
let frame = 0;
let reloadTimer = 0;
let rendered = false;
let openDetail = () => {};

// Where focus goes when the button pressed disappears with the state it acted on.
const NEXT_FOCUS = { pause: 'resume', resume: 'pause', retry: 'pause', cancel: 'retry' };

class Row {
  constructor(download) {
    const li = template.content.firstElementChild.cloneNode(true);
    const id = download.id;
    this.id = id;
    this.li = li;
    li.dataset.id = id;
    this.pick = li.querySelector('.pick');
    this.thumb = li.querySelector('.thumb');
    this.name = li.querySelector('.name');
    this.name.id = `n-${id}`;
    this.bar = li.querySelector('.bar');
    this.bar.setAttribute('aria-labelledby', this.name.id);
    this.state = li.querySelector('.state');
    this.kind = li.querySelector('.kind');
    this.bytes = li.querySelector('.bytes');
    this.speed = li.querySelector('.speed');
    this.eta = li.querySelector('.eta');
    this.conns = li.querySelector('.conns');
    this.error = li.querySelector('.error');
    this.link = li.querySelector('.download');
    this.buttons = {};
    for (const button of li.querySelectorAll('[data-act]')) {
      this.buttons[button.dataset.act] = button;
      button.setAttribute('aria-describedby', this.name.id);
    }
    this.link.setAttribute('aria-describedby', this.name.id);
    this.shown = {};
    this.update(download);
  }

  // Writes `value` into `target[property]` only when it changed since the last write.
  put(key, target, property, value) {
    if (this.shown[key] === value) return;
    this.shown[key] = value;
    target[property] = value;
  }

  update(download) {
    this.download = download;
    const d = download;
    const label = fmt.name(d);
    this.put('name', this.name, 'textContent', label);
    this.put('title', this.name, 'title', d.url);
    this.put('pickLabel', this.pick, 'ariaLabel', `Select ${label}`);
    this.put('pick', this.pick, 'checked', picked.has(d.id));
    if (this.li.dataset.state !== d.state) this.li.dataset.state = d.state;
    const active = d.state === 'active';
    this.put('state', this.state, 'textContent', fmt.STATE_WORDS[d.state] || d.state);
    const quality = d.quality && d.quality !== 'best' ? ` ${d.quality}` : '';
    let kind = d.kind === 'media' ? `media${quality}` : d.kind;
    if (d.playlist) kind = `playlist, ${d.playlist.completed} of ${d.playlist.entries} done`;
    if (d.parent) kind = `${kind}, entry ${d.playlist_index}`;
    this.put('kind', this.kind, 'textContent', kind === 'auto' ? '' : `· ${kind}`);
    const percent = fmt.percent(d);
    if (percent === null) {
      if (active) this.bar.removeAttribute('value');
      else this.put('bar', this.bar, 'value', 0);
      if (active) this.shown.bar = undefined;
    } else {
      this.put('bar', this.bar, 'value', percent);
    }
    const size = d.size ? ` of ${fmt.bytes(d.size)}` : '';
    const share = percent === null ? '' : ` (${percent} %)`;
    this.put('bytes', this.bytes, 'textContent', d.bytes_done || d.size ? `· ${fmt.bytes(d.bytes_done)}${size}${share}` : '');
    this.put('speed', this.speed, 'textContent', active && d.speed ? `· ${fmt.rate(d.speed)}` : '');
    this.put('eta', this.eta, 'textContent', active && d.eta_secs != null ? `· ${fmt.duration(d.eta_secs)} left` : '');
    const n = d.connections;
    this.put('conns', this.conns, 'textContent', active && n ? `· ${n} connection${n === 1 ? '' : 's'}` : '');
    const error = d.state === 'completed' ? '' : d.error || '';
    this.put('error', this.error, 'textContent', error);
    this.put('errorHidden', this.error, 'hidden', !error);
    this.put('thumbHidden', this.thumb, 'hidden', !d.has_thumbnail);
    if (d.has_thumbnail && !this.shown.thumbSrc) {
      this.shown.thumbSrc = true;
      this.thumb.loading = 'lazy';
      this.thumb.src = `${jobPath(d.id)}/thumbnail`;
    }
    for (const [action, button] of Object.entries(this.buttons)) {
      let hidden = !allowed(action, d.state);
      if (action === 'play') hidden = !fmt.playable(d);
      this.put(`hide-${action}`, button, 'hidden', hidden);
    }
    const done = d.state === 'completed';
    this.put('linkHidden', this.link, 'hidden', !done);
    if (done) this.put('href', this.link, 'href', `${jobPath(d.id)}/file`);
  }
}

export function init(options) {
  list = $('list');
  template = $('row-template');
  openDetail = options.open;
  list.addEventListener('click', onListClick);
  list.addEventListener('change', onPick);
  $('filter-state').addEventListener('change', (e) => setView({ state: e.target.value }));
  $('filter-order').addEventListener('change', (e) => setView({ order: e.target.value }));
  $('page-size').addEventListener('change', (e) => setView({ limit: Number(e.target.value) }));
  let typing = 0;
  $('filter-search').addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => setView({ search: e.target.value.trim() }), 250);
  });
  $('page-prev').addEventListener('click', () => page(-1));
  $('page-next').addEventListener('click', () => page(1));
  $('pick-all').addEventListener('change', (e) => {
    for (const row of rows.values()) {
      if (e.target.checked) picked.add(row.id);
      else picked.delete(row.id);
      row.put('pick', row.pick, 'checked', e.target.checked);
    }
    showPicked();
  });
  for (const button of document.querySelectorAll('[data-bulk]')) {
    button.addEventListener('click', () => bulk(button.dataset.bulk));
  }
}

function setView(change) {
  Object.assign(view, change, { offset: 0 });
  picked.clear();
  showPicked();
  load();
}

function page(step) {
  const offset = view.offset + step * view.limit;
  if (offset < 0 || offset >= total) return;
  view.offset = offset;
  load();
}

// Forgets every row (at sign-out, so the next account sees nothing of this one's).
export function clear() {
  loadSeq += 1;
  rows.clear();
  picked.clear();
  pending.clear();
  list.replaceChildren();
  total = 0;
  rendered = false;
}

// Fetches the current page and renders it.
export async function load() {
  clearTimeout(reloadTimer);
  reloadTimer = 0;
  const seq = ++loadSeq;
  const started = performance.now();
  list.setAttribute('aria-busy', 'true');
  const params = {
    limit: view.limit,
    offset: view.offset,
    state: view.state,
    search: view.search,
    order: view.order === 'newest' ? '' : view.order,
  };
  let answer;
  try {
    answer = await api('GET', `/v1/downloads${query(params)}`);
  } catch (error) {
    if (seq === loadSeq) note(`The list could not be loaded: ${error.message}`);
    return;
  }
  if (seq !== loadSeq) return;
  // Only the latest of each measure is kept: the page may stay open for weeks.
  performance.clearMeasures('haul:fetch');
  performance.measure('haul:fetch', { start: started });
  total = answer.total;
  if (answer.downloads.length === 0 && view.offset > 0 && total > 0) {
    view.offset = Math.floor((total - 1) / view.limit) * view.limit;
    return load();
  }
  render(answer.downloads);
  list.setAttribute('aria-busy', 'false');
  // The mark goes after the frame that shows the rows: a task queued from a frame callback runs after its paint.
  requestAnimationFrame(() =>
    setTimeout(() => {
      const first = !rendered;
      rendered = true;
      performance.clearMeasures('haul:list');
      performance.measure('haul:list', { start: started });
      if (first) performance.mark('haul:list-rendered');
      document.documentElement.dataset.rows = String(rows.size);
    }),
  );
}

// Loads again soon: at most once per 400 ms however many events ask for it.
export function reloadSoon() {
  if (!reloadTimer) reloadTimer = setTimeout(load, 400);
}

function note(text) {
  const element = $('list-note');
  element.textContent = text;
  element.hidden = !text;
}

function render(downloads) {
  const focused = [...rows.values()].find((row) => row.li.contains(document.activeElement));
  const keep = new Set(downloads.map((d) => d.id));
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }
  const wanted = downloads.map((d) => {
    let row = rows.get(d.id);
    if (row) row.update(d);
    else {
      row = new Row(d);
      rows.set(d.id, row);
    }
    pending.delete(d.id);
    return row.li;
  });
  // Move only what is out of place, so a focused row that stays keeps its focus.
  let cursor = list.firstElementChild;
  for (const li of wanted) {
    if (li === cursor) cursor = cursor.nextElementSibling;
    else list.insertBefore(li, cursor);
  }
  if (focused && !rows.has(focused.id)) {
    const next = list.querySelector('.name');
    (next || $('list-title')).focus();
  }
  const shown = downloads.length;
  $('page-info').textContent = shown
    ? `${view.offset + 1}–${view.offset + shown} of ${total}`
    : '';
  $('page-prev').disabled = view.offset === 0;
  $('page-next').disabled = view.offset + shown >= total;
  const filtered = view.state || view.search;
  note(shown ? '' : filtered ? 'No download matches.' : 'No downloads yet: add one above.');
  showPicked();
}

// Whether a download belongs in the current view, as far as the page can tell (the server decides searches).
function matches(d) {
  if (view.state && !view.state.split(',').includes(d.state)) return false;
  if (!view.search) return true;
  const text = view.search.toLowerCase();
  return [d.url, d.title, d.filename].some((field) => field && field.toLowerCase().includes(text));
}

// A live event: rows on this page are updated at the next frame; anything that changes which downloads the
// page should show loads the page again.
export function onEvent(kind, download) {
  const row = rows.get(download.id);
  if (kind === 'removed') {
    picked.delete(download.id);
    if (row) reloadSoon();
    return;
  }
  if (row) {
    pending.set(download.id, download);
    if (!frame) frame = requestAnimationFrame(flush);
    if (kind !== 'progress' && !matches(download)) reloadSoon();
  } else if (kind !== 'progress' && matches(download)) {
    reloadSoon();
  }
}

function flush() {
  frame = 0;
  const batch = pending;
  pending = new Map();
  for (const [id, download] of batch) rows.get(id)?.update(download);
}

async function onListClick(event) {
  const target = event.target.closest('[data-act], .name');
  if (!target) return;
  const row = rows.get(target.closest('.job').dataset.id);
  if (!row) return;
  const d = row.download;
  if (target.classList.contains('name')) return openDetail(d);
  const action = target.dataset.act;
  if (action === 'play') return openDetail(d, { play: true });
  const label = fmt.name(d);
  try {
    if (action === 'remove') {
      const answer = await confirmRemove(`“${label}”`, d.state === 'completed');
      if (!answer) return;
      await remove(d.id, answer.deleteFiles);
      announce(`Removed ${label}${answer.deleteFiles ? ' and its file' : ''}`);
      reloadSoon();
      return;
    }
    row.update(await act(action, d.id));
    announce(`${DONE_WORDS[action]}: ${label}`);
    if (target.hidden) {
      const next = row.buttons[NEXT_FOCUS[action]];
      (next && !next.hidden ? next : row.name).focus();
    }
  } catch (error) {
    announce(error.message);
    row.put('error', row.error, 'textContent', error.message);
    row.put('errorHidden', row.error, 'hidden', false);
  }
}

function onPick(event) {
  if (!event.target.classList.contains('pick')) return;
  const id = event.target.closest('.job').dataset.id;
  if (event.target.checked) picked.add(id);
  else picked.delete(id);
  rows.get(id).shown.pick = event.target.checked;
  showPicked();
}

function showPicked() {
  const n = picked.size;
  $('picked').textContent = n ? `${n} selected` : 'None selected';
  // The selection's buttons appear once something is selected: one row of controls less on a phone.
  for (const button of document.querySelectorAll('[data-bulk]')) button.hidden = n === 0;
  const all = $('pick-all');
  const onPage = [...rows.keys()].filter((id) => picked.has(id)).length;
  all.checked = onPage > 0 && onPage === rows.size;
  all.indeterminate = onPage > 0 && onPage < rows.size;
}

async function bulk(action) {
  const ids = [...picked];
  const asked = ids.length;
  if (!asked) return;
  const what = ids.length === 1 ? '1 download' : `${ids.length} downloads`;
  let deleteFiles = false;
  if (action === 'remove') {
    const finished = ids.some((id) => !rows.has(id) || rows.get(id).download.state === 'completed');
    const answer = await confirmRemove(what, finished);
    if (!answer) return;
    deleteFiles = answer.deleteFiles;
  } else {
    // Only the downloads whose state allows the action; the others are left as they are.
    const able = ids.filter((id) => !rows.has(id) || allowed(action, rows.get(id).download.state));
    ids.splice(0, ids.length, ...able);
  }
  const results = await each(ids, 4, (id) => (action === 'remove' ? remove(id, deleteFiles) : act(action, id)));
  const failed = results.filter((result) => !result.ok);
  const verb = action === 'remove' ? 'Removed' : DONE_WORDS[action];
  const done = results.length - failed.length;
  announce(`${verb}: ${done} of ${asked}${failed.length ? `; ${failed[0].error.message}` : ''}`);
  if (action === 'remove') picked.clear();
  load();
}
