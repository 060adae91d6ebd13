// The one way the page talks to the server: JSON over fetch with the session cookie, the CSRF marker on every
// request that changes something, and haul's error shape turned into an ApiError with a message for people.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called when a request finds the session gone (401), so the page can ask for the key again.
let onSignedOut = () => {};
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Requested-With'] = 'haul';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached; check that haul serve is running.');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's page, for instance; the status says enough.
  }
  if (response.ok) return json;
  const error = json && json.error;
  const message = (error && error.message) || `${response.status} ${response.statusText}`.trim();
  const failure = new ApiError(response.status, (error && error.code) || 'http', message);
  if (response.status === 401 && !path.startsWith('/v1/session')) onSignedOut(failure.message);
  throw failure;
}

// A query string from the parameters that have a value.
export function query(params) {
  const pairs = Object.entries(params).filter(([, value]) => value !== '' && value !== undefined && value !== null);
  return pairs.length ? '?' + new URLSearchParams(pairs).toString() : '';
}

export const jobPath = (id) => `/v1/downloads/${encodeURIComponent(id)}`;
