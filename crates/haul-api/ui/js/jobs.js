// What can be done to a download, for a row, the detail view and a selection alike: the state machine's
// actions (crates/haul-core/STATE.md) and removal behind a confirmation.

import { api, jobPath } from './api.js';
import { confirm } from './page.js';

// Which states allow each action.
const ALLOWED = {
  pause: ['queued', 'active'],
  resume: ['paused'],
  retry: ['failed', 'cancelled'],
  cancel: ['queued', 'active', 'paused'],
};

export const allowed = (action, state) => !ALLOWED[action] || ALLOWED[action].includes(state);

export const DONE_WORDS = { pause: 'Paused', resume: 'Resumed', retry: 'Retrying', cancel: 'Cancelled' };

// POSTs pause, resume, retry or cancel; answers the download as it is now.
export const act = (action, id) => api('POST', `${jobPath(id)}/${action}`);

export const remove = (id, deleteFiles) => api('DELETE', `${jobPath(id)}${deleteFiles ? '?delete_files=true' : ''}`);

// Asks whether to remove `what` ("“movie.mp4”", "3 downloads"); answers null to keep, or { deleteFiles }.
export function confirmRemove(what, finished) {
  return confirm({
    title: `Remove ${what}?`,
    text: finished
      ? 'It leaves the list. The downloaded file stays on the server unless you tick the box below.'
      : 'It stops and leaves the list; partial files are deleted.',
    ok: 'Remove',
    files: finished,
  });
}
