// Small DOM helpers shared by the page's parts: lookups, the status announcer, errors shown beside fields,
// dialogs and the clipboard.

export const $ = (id) => document.getElementById(id);

// Says something to screen readers through the polite status region: what an action did.
export function announce(text) {
  const region = $('status');
  region.textContent = '';
  // Set after a frame, so the same message twice is announced twice.
  requestAnimationFrame(() => (region.textContent = text));
}

// Shows `message` in the error element `id` and marks `field` invalid; an empty message clears both.
export function showError(id, message, field) {
  const element = $(id);
  if (element) {
    element.textContent = message || '';
    element.hidden = !message;
  }
  if (field) {
    if (message) field.setAttribute('aria-invalid', 'true');
    else field.removeAttribute('aria-invalid');
  }
}

// Shows a dialog modally and resolves with its returnValue when it closes.
export function modal(dialog) {
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

// Asks a yes/no question in the confirmation dialog; `files` offers the "also delete the file" box.
// Answers null for no, or { deleteFiles }.
export async function confirm({ title, text, ok, files = false }) {
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  const box = $('confirm-files');
  box.checked = false;
  box.parentElement.hidden = !files;
  const answer = await modal($('confirm'));
  return answer === 'yes' ? { deleteFiles: files && box.checked } : null;
}

// Puts `text` on the clipboard where the browser allows it (a secure context); says whether it did.
export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// Runs `work` over `items`, at most `width` at a time; answers the results in order ({ ok, value | error }).
export async function each(items, width, work) {
  const results = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { ok: true, value: await work(items[index], index) };
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return results;
}
