// Interface C: walk through the 11-step series one step at a time until the image looks like a
// 50/50 mix. Step s shows λ = s/10 of class 1, so "more class 1" is step + 1. Every visit is
// recorded with its time from the trial clock; the server checks the walk (payloads.py).
"use strict";

(function () {
  const view = HMixTrial.config.view;
  const urls = view.step_urls;
  const last = urls.length - 1;
  const form = document.getElementById("trial-form");
  const image = document.getElementById("stimulus");
  const moreClass1 = document.getElementById("more-class1");
  const moreClass2 = document.getElementById("more-class2");
  const submitButton = document.getElementById("submit-trial");

  let step = view.start_step;
  let clockStart = null;
  let preloaded = false;
  let submitting = false;
  const visits = [];
  const decoded = urls.map(() => false);

  // Preload every step so that a key press swaps to an image already decoded in memory: the
  // participant sees each step the moment it is chosen, never a half-loaded frame.
  const preloads = urls.map((url, i) => {
    const img = new Image();
    img.decoding = "sync";
    img.src = url;
    return img.decode().then(() => { decoded[i] = true; }, () => { /* shown on demand instead */ });
  });

  const ready = () => clockStart !== null && preloaded && !submitting;

  function render() {
    const url = urls[step];
    if (decoded[step]) {
      image.src = url;
    } else {
      // A frame that failed to preload is fetched now; show it only if still the current step.
      const wanted = step;
      preloads[wanted].finally(() => { if (step === wanted) image.src = url; });
    }
    const focused = document.activeElement;
    moreClass1.disabled = !ready() || step >= last;
    moreClass2.disabled = !ready() || step <= 0;
    submitButton.disabled = !ready();
    form.dataset.ready = String(ready());
    // At an end the pressed button disables itself: keep keyboard focus on the other one.
    if (focused === moreClass1 && moreClass1.disabled && !moreClass2.disabled) moreClass2.focus();
    if (focused === moreClass2 && moreClass2.disabled && !moreClass1.disabled) moreClass1.focus();
  }

  function move(delta) {
    if (!ready()) return;
    const next = step + delta;
    if (next < 0 || next > last) return;
    step = next;
    // Tenths of a millisecond: the resolution browsers give performance.now() anyway.
    visits.push({ step: step, t_ms: Math.round((performance.now() - clockStart) * 10) / 10 });
    render();
  }

  async function submit() {
    if (!ready()) return;
    // The server's rule too (payloads.parse_construct_midpoint): the start step is no answer.
    if (visits.length < 2 && !view.allow_no_steps) {
      HMixTrial.showError("Take at least one step through the series before submitting.");
      return;
    }
    HMixTrial.showError("");
    submitting = true;
    render();
    await HMixTrial.submit({ final_step: step, visits: visits.slice() }, submitButton);
    // Back here only if the server refused the answer: let the participant carry on.
    submitting = false;
    render();
  }

  moreClass1.addEventListener("click", () => move(1));
  moreClass2.addEventListener("click", () => move(-1));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.key === "ArrowLeft") {
      event.preventDefault();
      move(1);
    } else if (event.key === "ArrowRight") {
      event.preventDefault();
      move(-1);
    } else if (event.key === "Enter" && !event.repeat && !(event.target instanceof HTMLButtonElement)) {
      // A focused button handles Enter itself (a step button steps, Continue submits).
      event.preventDefault();
      submit();
    }
  });

  HMixTrial.onShown((start) => {
    clockStart = start;
    visits.push({ step: step, t_ms: 0 });
    render();
  });
  Promise.allSettled(preloads).then(() => {
    preloaded = true;
    render();
  });
})();
