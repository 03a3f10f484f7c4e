// Interface F: one column (A, B or C) for every row. Each row is a native radio group, so Tab
// moves between rows and the arrow keys choose within a row; A/B/C (or 1/2/3) pick directly.
"use strict";

(function () {
  const form = document.getElementById("trial-form");
  const button = document.getElementById("submit-trial");
  const status = document.getElementById("rows-status");
  const rows = Array.from(form.querySelectorAll("tr.iri-row"));
  const pick = (row) => row.querySelector("input.iri-radio:checked");
  const answered = () => rows.filter(pick).length;
  // While the answer is on its way the choices shown stay the ones sent. trial.js enables Next
  // again only when the submit failed; on success the page moves on.
  let sending = false;

  function sync() {
    const done = answered();
    rows.forEach((row) => row.classList.toggle("answered", Boolean(pick(row))));
    if (!sending) button.disabled = done < rows.length;
    status.textContent = done < rows.length ? `${done} of ${rows.length} rows done` : "All rows done";
    if (done === rows.length) HMixTrial.showError("");
  }

  const letterKeys = { a: 0, b: 1, c: 2, 1: 0, 2: 1, 3: 2 };

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    const target = event.target;
    const key = event.key.toLowerCase();
    if (sending && target.matches("input.iri-radio")) { event.preventDefault(); return; }
    if (target.matches("input.iri-radio") && key in letterKeys) {
      event.preventDefault();
      const radio = target.closest("tr").querySelectorAll("input.iri-radio")[letterKeys[key]];
      radio.checked = true;
      radio.focus();
      sync();
    } else if (event.key === "Enter" && !(target instanceof HTMLButtonElement)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("click", (event) => {
    if (sending && event.target.matches("input.iri-radio")) event.preventDefault();
  });
  form.addEventListener("change", sync);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const missing = rows.findIndex((row) => !pick(row));
    if (missing >= 0) {
      HMixTrial.showError(`Please choose a column for row ${missing + 1}.`);
      rows[missing].querySelector("input.iri-radio").focus();
      return;
    }
    if (sending) return;
    sending = true;
    const assignments = rows.map((row) => Number(pick(row).value));
    HMixTrial.submit({ assignments }, button).finally(() => { sending = button.disabled; });
  });
  sync();
})();
