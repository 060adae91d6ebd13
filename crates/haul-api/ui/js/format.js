// Numbers for people: sizes and rates in binary units, durations, dates, and a download's display name.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n) {
  if (n === null || n === undefined) return '?';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export const rate = (n) => `${bytes(n)}/s`;

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export const date = (ms) => (ms ? new Date(ms).toLocaleString() : '');

export const STATE_WORDS = {
  queued: 'Queued',
  active: 'Downloading',
  paused: 'Paused',
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

// What to call a download: its title, its file name, or the last part of its URL.
export function name(download) {
  if (download.title) return download.title;
  if (download.filename) return download.filename;
  try {
    const url = new URL(download.url);
    const last = url.pathname.split('/').filter(Boolean).pop();
    return last ? decodeURIComponent(last) : url.host;
  } catch {
    return download.url;
  }
}

// 0 to 100, or null when the size is not known yet.
export function percent(download) {
  if (download.state === 'completed') return 100;
  if (!download.size) return null;
  return Math.min(100, Math.floor((download.bytes_done / download.size) * 1000) / 10);
}

const AUDIO = /\.(m4a|mp3|opus|ogg|oga|flac|wav|aac)$/i;
const VIDEO = /\.(mp4|m4v|webm|mkv|mov|ogv)$/i;

// 'video', 'audio' or null: whether the finished file plays in the page.
export function playable(download) {
  if (download.state !== 'completed') return null;
  const file = download.path || download.filename || '';
  if (download.quality === 'audio' || AUDIO.test(file)) return 'audio';
  if (download.kind === 'media' || VIDEO.test(file)) return 'video';
  return null;
}
