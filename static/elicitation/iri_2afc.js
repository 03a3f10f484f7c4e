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
  // On a narrow screen the options are stacked (iri.css): then the up and down arrows point at
  // them too. Otherwise those keys keep scrolling the page.
  const pair = form.querySelector(".iri-pair");
  const stackedKeys = { ArrowUp: "left", ArrowDown: "right" };
  const sideFor = (key) =>
    keys[key] ?? (getComputedStyle(pair).flexDirection === "column" ? stackedKeys[key] : undefined);

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    if (sending && event.target.matches?.('input[name="choice"]')) { event.preventDefault(); return; }
    const side = sideFor(event.key);
    if (side) {
      event.preventDefault();
      select(side);
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
