// The API key (kept in sessionStorage only) and calls to the /v1 endpoints.

const STORE = "aag.apiKey";

export function getKey() {
  try {
    return sessionStorage.getItem(STORE) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  sessionStorage.setItem(STORE, key.trim());
}

export function forgetKey() {
  sessionStorage.removeItem(STORE);
}

/** The fragment's parameters (#key=…&customer=…). */
export function fragment() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

/**
 * Take a key passed as #key=… : store it for this tab and remove it from the address bar
 * (and so from the history), keeping the fragment's other parameters.
 */
export function takeKeyFromFragment() {
  const params = fragment();
  const key = params.get("key");
  if (key === null) return false;
  params.delete("key");
  if (key.trim()) setKey(key);
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return Boolean(key.trim());
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const NO_KEY = "No API key: enter a key with the read scope above (create one with “aag keys add NAME --scopes read”).";

/** GET a /v1 path and return its JSON, or throw an ApiError with a sentence for people. */
export async function api(path) {
  const key = getKey();
  if (!key) throw new ApiError(0, NO_KEY);
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The server did not answer: is “aag serve” still running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.error === "string" ? body.error : response.statusText;
    if (response.status === 401) {
      throw new ApiError(401, `The API key was refused (401: ${detail}). Check it, or create one with “aag keys add NAME --scopes read”.`);
    }
    if (response.status === 403) throw new ApiError(403, `This API key may not read (403: ${detail}).`);
    throw new ApiError(response.status, `${response.status}: ${detail}`);
  }
  return body;
}

export const enc = encodeURIComponent;
