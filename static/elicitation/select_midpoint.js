// Interface D: all 11 images of the series in the order the server shuffled for this trial; the
// participant picks the 50/50 one. Only the position is sent: the server maps it to its step.
"use strict";

(function () {
  const form = document.getElementById("trial-form");
  const group = document.getElementById("options");
  const options = Array.from(group.querySelectorAll('[role="radio"]'));
  const submitButton = document.getElementById("submit-trial");
  const hint = document.getElementById("select-hint");
  let chosen = null;
  let shown = false;

  function setTabStop(position) {
    options.forEach((option, i) => { option.tabIndex = i === position ? 0 : -1; });
  }

  function select(position) {
    // A choice made before every image is on screen would have no meaningful response time.
    if (!shown) return;
    chosen = position;
    options.forEach((option, i) => option.setAttribute("aria-checked", String(i === position)));
    setTabStop(position);
    submitButton.disabled = false;
    hint.textContent = "Press Next to confirm your choice.";
    HMixTrial.showError("");
  }

  function columns() {
    const top = options[0].offsetTop;
    return Math.max(1, options.filter((option) => option.offsetTop === top).length);
  }

  function target(from, key) {
    const n = options.length;
    switch (key) {
      case "ArrowRight": return (from + 1) % n;
      case "ArrowLeft": return (from - 1 + n) % n;
      case "ArrowDown": return Math.min(n - 1, from + columns());
      case "ArrowUp": return Math.max(0, from - columns());
      case "Home": return 0;
      case "End": return n - 1;
      default: return null;
    }
  }

  options.forEach((option, i) => option.addEventListener("click", () => select(i)));
  group.addEventListener("keydown", (event) => {
    const from = options.indexOf(document.activeElement);
    if (from < 0 || event.altKey || event.ctrlKey || event.metaKey) return;
    const to = target(from, event.key);
    if (to === null) return;
    event.preventDefault();
    setTabStop(to);
    options[to].focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (chosen === null) {
      HMixTrial.showError("Please choose one image first.");
      return;
    }
    HMixTrial.submit({ chosen_position: chosen }, submitButton);
  });
  HMixTrial.onShown(() => {
    shown = true;
    form.dataset.ready = "true";
  });
})();
