// haul's page: sign-in, then the add form, the live list and the header's totals. Plain ES modules, no build
// step; everything goes through the public /v1 API with the session cookie (js/api.js).

import { api, whenSignedOut } from './js/api.js';
import * as fmt from './js/format.js';
import { $, announce, showError } from './js/page.js';
import * as list from './js/list.js';
import * as detail from './js/detail.js';
import * as add from './js/add.js';
import * as keys from './js/keys.js';

const EVENT_KINDS = [
  'added', 'started', 'progress', 'paused', 'resumed', 'retried', 'queued', 'completed', 'failed', 'cancelled',
  'removed',
];

let source = null;
let broken = false;
let statsTimer = 0;
let statsPoll = 0;

function signedIn(session) {
  keys.setSessionKey(session.key_id);
  $('account-name').textContent = session.name;
  $('account-name').title = session.expires_at ? `Signed in until ${fmt.date(session.expires_at)}` : '';
  $('who').hidden = false;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('totals').hidden = false;
  list.load();
  stats();
  live();
}

function signedOut(message) {
  if (source) source.close();
  source = null;
  clearTimeout(statsTimer);
  clearTimeout(statsPoll);
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  list.clear();
  for (const id of ['who', 'app', 'totals', 'live']) $(id).hidden = true;
  $('sign-in').hidden = false;
  showError('key-error', message, $('key'));
  $('key').focus();
}

// The live feed: EventSource reconnects by itself and sends Last-Event-ID, so the server replays what was
// missed; after a break the page also reloads the list and totals in case the replay buffer was outrun.
function live() {
  if (source) source.close();
  const stream = new EventSource('/v1/events');
  source = stream;
  const state = $('live');
  state.hidden = false;
  stream.addEventListener('open', () => {
    state.classList.add('on');
    $('live-text').textContent = 'Live';
    if (broken) {
      broken = false;
      list.load();
      stats();
    }
  });
  stream.addEventListener('error', () => {
    if (source !== stream) return;
    broken = true;
    state.classList.remove('on');
    $('live-text').textContent = 'Reconnecting';
    if (stream.readyState === EventSource.CLOSED) {
      // The server refused the stream (the session ended, or it restarted without it): ask it who we are.
      source = null;
      setTimeout(async () => {
        try {
          await api('GET', '/v1/session');
          live();
        } catch (error) {
          if (error.status === 401) signedOut('Your session has ended; sign in again.');
          else setTimeout(live, 3000);
        }
      }, 1000);
    }
  });
  const onEvent = (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    list.onEvent(data.kind, data.download);
    detail.record(data.kind, data.download);
    if (data.kind !== 'progress') statsSoon();
  };
  for (const kind of EVENT_KINDS) stream.addEventListener(kind, onEvent);
}

function statsSoon() {
  if (!statsTimer) statsTimer = setTimeout(stats, 500);
}

// The header's totals, and the per-state counts in the filter; polled for the speed while anything runs.
async function stats() {
  clearTimeout(statsTimer);
  clearTimeout(statsPoll);
  statsTimer = 0;
  let s;
  try {
    s = await api('GET', '/v1/stats');
  } catch {
    return;
  }
  const parts = [`${s.total} download${s.total === 1 ? '' : 's'}`];
  for (const state of ['active', 'queued', 'paused', 'completed', 'failed', 'cancelled']) {
    if (s[state]) parts.push(`${s[state]} ${fmt.STATE_WORDS[state].toLowerCase()}`);
  }
  if (s.active) parts.push(fmt.rate(s.speed));
  $('totals').textContent = parts.join(' · ');
  for (const option of $('filter-state').options) {
    const word = option.textContent.replace(/ \(\d+\)$/, '');
    const count = option.value === '' ? s.total : option.value.split(',').reduce((n, state) => n + (s[state] || 0), 0);
    option.textContent = `${word} (${count})`;
  }
  if (s.active || s.queued) statsPoll = setTimeout(stats, 2000);
}

async function signIn(event) {
  event.preventDefault();
  const input = $('key');
  const key = input.value.trim();
  if (!key) return showError('key-error', 'Paste an API key first.', input);
  showError('key-error', '', input);
  const button = event.target.querySelector('button');
  button.disabled = true;
  try {
    const session = await api('POST', '/v1/session', { key });
    input.value = '';
    signedIn(session);
    announce(`Signed in as ${session.name}`);
    $('add-urls').focus();
  } catch (error) {
    showError('key-error', error.message, input);
    input.focus();
    input.select();
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api('DELETE', '/v1/session');
  } catch (error) {
    announce(error.message);
    return;
  }
  signedOut('');
  announce('Signed out');
}

async function boot() {
  whenSignedOut((message) => signedOut(message));
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  list.init({ open: detail.open });
  detail.init({ changed: () => list.reloadSoon() });
  add.init({ added: () => list.reloadSoon() });
  keys.init();
  try {
    signedIn(await api('GET', '/v1/session'));
  } catch (error) {
    signedOut(error.status === 401 ? '' : error.message);
  }
}

boot();
