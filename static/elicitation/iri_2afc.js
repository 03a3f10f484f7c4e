// Interface E: pick the option closer to the query. Selecting and submitting are two steps, so
// a slip of the mouse or a stray key never sends an answer on its own.
"use strict";

(function () {
  const form = document.getElementById("trial-form");
  const button = document.getElementById("submit-trial");
  const radio = (side) => form.querySelector(`input[name="choice"][value="${side}"]`);
  const chosen = () => form.querySelector('input[name="choice"]:checked')?.value || null;
  // While the answer is on its way the choice shown stays the one sent. trial.js enables Next
  // again only when the submit failed; on success the page moves on.
  let sending = false;

  function sync() {
    if (!sending) button.disabled = chosen() === null;
    if (chosen()) HMixTrial.showError("");
  }

  function select(side) {
    if (sending) return;
    radio(side).checked = true;
    radio(side).focus({ preventScroll: true });
    sync();
  }

  const keys = { ArrowLeft: "left", 1: "left", ArrowRight: "right", 2: "right" };

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    if (sending && event.target.matches?.('input[name="choice"]')) { event.preventDefault(); return; }
    if (event.key in keys) {
      event.preventDefault();
      select(keys[event.key]);
    } else if (event.key === "Enter" && !(event.target instanceof HTMLButtonElement)) {
      // A focused button submits by itself; elsewhere Enter means Next.
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("click", (event) => {
    if (sending && event.target.matches('input[name="choice"]')) event.preventDefault();
  });
  form.addEventListener("change", sync);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const side = chosen();
    if (!side) { HMixTrial.showError("Please choose one of the two images first."); return; }
    if (sending) return;
    sending = true;
    HMixTrial.submit({ choice: side }, button).finally(() => { sending = button.disabled; });
  });
  sync();
})();
