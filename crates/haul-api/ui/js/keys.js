// The signed-in account's keys: list, create (the secret is shown once), revoke.

import { api } from './api.js';
import * as fmt from './format.js';
import { $, announce, showError, confirm, copy } from './page.js';

// The key this page's session was opened with: revoking it signs the page out.
let sessionKey = null;

export function setSessionKey(id) {
  sessionKey = id || null;
}

export function init() {
  $('keys-open').addEventListener('click', open);
  $('key-create').addEventListener('click', create);
  $('key-secret-copy').addEventListener('click', async () => {
    const copied = await copy($('key-secret-value').value);
    announce(copied ? 'Copied' : 'Select the key and copy it');
    if (!copied) $('key-secret-value').select();
  });
  $('keys-list').addEventListener('click', async (event) => {
    const button = event.target.closest('[data-key]');
    if (button) revoke(button.dataset.key, button.dataset.prefix);
  });
  $('keys').addEventListener('close', () => {
    $('key-secret-value').value = '';
    $('key-secret').hidden = true;
  });
}

async function open() {
  showError('keys-error', '');
  $('keys').showModal();
  await load();
}

async function load() {
  let answer;
  try {
    answer = await api('GET', '/v1/keys');
  } catch (error) {
    return showError('keys-error', error.message);
  }
  const items = answer.keys.map((key) => {
    const li = document.createElement('li');
    li.dataset.keyId = key.id;
    const prefix = document.createElement('code');
    prefix.textContent = `${key.prefix}…`;
    const about = document.createElement('span');
    const mine = key.id === sessionKey ? ' (this session)' : '';
    about.textContent = `${key.kind}, created ${fmt.date(key.created_at)}${mine}`;
    li.append(prefix, about);
    if (key.revoked_at) {
      li.classList.add('revoked');
      const state = document.createElement('span');
      state.textContent = `revoked ${fmt.date(key.revoked_at)}`;
      li.append(state);
    } else {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'danger';
      button.textContent = 'Revoke';
      button.dataset.key = key.id;
      button.dataset.prefix = key.prefix;
      button.setAttribute('aria-label', `Revoke key ${key.prefix}`);
      li.append(button);
    }
    return li;
  });
  if (!items.length) {
    const li = document.createElement('li');
    li.textContent = 'No keys.';
    items.push(li);
  }
  $('keys-list').replaceChildren(...items);
}

async function create() {
  showError('keys-error', '');
  try {
    const key = await api('POST', '/v1/keys', {});
    $('key-secret-value').value = key.secret;
    $('key-secret').hidden = false;
    $('key-secret-value').focus();
    $('key-secret-value').select();
    announce('Key created; copy it now');
    await load();
  } catch (error) {
    showError('keys-error', error.message);
  }
}

async function revoke(id, prefix) {
  const own = id === sessionKey;
  const answer = await confirm({
    title: `Revoke key ${prefix}…?`,
    text: own
      ? 'This page signed in with this key: revoking it signs you out here, and anything else using it loses access at once.'
      : 'Anything using it loses access at once.',
    ok: 'Revoke',
  });
  if (!answer) return;
  try {
    await api('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
    announce(`Key ${prefix} revoked`);
    await load();
  } catch (error) {
    showError('keys-error', error.message);
  }
}
