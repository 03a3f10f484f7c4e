// Shared trial plumbing: response timing, the idempotency key, and a submit that survives
// double clicks, refreshes and lost connections. Business rules live on the server.
"use strict";

window.HMixTrial = (function () {
  const config = JSON.parse(document.getElementById("trial-config").textContent);
  const keyName = "hmix-client-key-" + config.trial_id;
  let shownAt = null;
  let shownCallbacks = [];
  let inFlight = false;

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // The key outlives a refresh of this trial, so a submit whose answer was lost in transit is
  // recognised by the server when sent again instead of being stored twice.
  function clientKey() {
    let key = sessionStorage.getItem(keyName);
    if (!key) {
      key = uuid4();
      sessionStorage.setItem(keyName, key);
    }
    return key;
  }

  // Response time starts at the first paint of the stimulus, not at page load. Every image the
  // trial shows carries data-stimulus; the clock starts once all of them have loaded.
  function startClockWhenShown(images) {
    const pending = images.filter((img) => !(img.complete && img.naturalWidth));
    const start = () => requestAnimationFrame(() => {
      shownAt = performance.now();
      shownCallbacks.forEach((callback) => callback(shownAt));
      shownCallbacks = [];
    });
    if (!pending.length) { start(); return; }
    let left = pending.length;
    pending.forEach((img) => img.addEventListener("load", () => { left -= 1; if (!left) start(); }, { once: true }));
  }

  // Calls back with the clock's start (a performance.now() value) once the stimulus is shown, so
  // that times within a trial (interface C's visits) are measured from the same moment as rt_ms.
  function onShown(callback) {
    if (shownAt !== null) callback(shownAt);
    else shownCallbacks.push(callback);
  }

  function showError(message) {
    const el = document.getElementById("trial-error");
    el.textContent = message;
    el.hidden = !message;
  }

  async function submit(answer, button) {
    if (inFlight) return;
    inFlight = true;
    button.disabled = true;
    showError("");
    const body = JSON.stringify({
      trial: config.trial_id,
      client_key: clientKey(),
      rt_ms: Math.max(0, Math.round(performance.now() - (shownAt ?? performance.now()))),
      answer: answer,
    });
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        res = await fetch(config.submit_url, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: body,
        });
      } catch (err) {
        // Network trouble: retry with the same key; the server stores the answer only once.
        showError("Connection problem, trying again…");
        await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** attempt)));
        continue;
      }
      if (res.ok) {
        sessionStorage.removeItem(keyName);
        window.location.replace(config.session_url);
        return;
      }
      let message = "Something went wrong (" + res.status + ").";
      try { message = (await res.json()).message || message; } catch (e) { /* not JSON */ }
      if (res.status === 409) {
        // Already answered elsewhere (another tab) or the session moved on: show where it is.
        window.location.replace(config.session_url);
        return;
      }
      if (res.status >= 500 && attempt < 5) {
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        continue;
      }
      showError(message);
      inFlight = false;
      button.disabled = false;
      return;
    }
  }

  startClockWhenShown(Array.from(document.querySelectorAll("img[data-stimulus]")));
  return { config, submit, showError, onShown };
})();
