// Interface B: the mixing slider and the confidence slider. Neither has a starting position:
// the thumb appears where the participant first clicks, taps or types
// (docs/user-guide/interfaces.md#mixing-factor, "no anchoring at 50"), and Next stays disabled
// until both were set. The server refuses an answer without both sliders set as well.
//
// Keyboard users get no anchor either. An arrow key moves a value, and an unset slider has no
// value to move from: starting at 50 (or at any point the page picks) is exactly the default the
// hidden thumb avoids. So on an unset slider the arrow and Page keys set nothing and say how to
// start: type the number meant (digits typed in quick succession make one number, "7" "5" is
// 75), the keyboard's way of pointing at a spot as a click does, or Home / End to start from an
// end the participant chose. Once set, the arrows adjust from the participant's own value.
"use strict";

(function () {
  const MIN = 0;
  const MAX = 100;
  const STEP = 1;
  const PAGE = 10;
  const TYPING_PAUSE_MS = 1000; // digits typed closer together than this make one number
  const NOT_SET = "Set both sliders before submitting.";
  const HOW_TO_START =
    "Type a number from 0 to 100 to set this slider (or press Home or End to start from an " +
    "end); then the arrow keys move it.";

  const form = document.getElementById("trial-form");
  const button = document.getElementById("submit-trial");
  const hint = document.getElementById("slider-hint");

  function makeSlider(el, describe) {
    const track = el.querySelector(".hslider-track");
    const thumb = el.querySelector(".hslider-thumb");
    const readout = document.getElementById(el.dataset.name + "-readout");
    // setBy: how the value was last set ("pointer" or "keyboard"), sent with the answer.
    const slider = { el: el, value: null, setBy: null };

    function set(raw, how = "pointer") {
      slider.setBy = how;
      const value = Math.min(MAX, Math.max(MIN, Math.round(raw)));
      slider.value = value;
      el.classList.add("is-set");
      thumb.style.left = value + "%";
      const text = describe(value);
      el.setAttribute("aria-valuenow", String(value));
      el.setAttribute("aria-valuetext", text);
      readout.textContent = text;
      readout.classList.remove("unset");
      sync();
    }

    function valueAt(clientX) {
      const box = track.getBoundingClientRect();
      return ((clientX - box.left) / box.width) * (MAX - MIN) + MIN;
    }

    // Mouse and pen set the value on press; a touch sets it on lift or drag, so that a finger
    // that starts scrolling the page on the slider does not leave an answer behind.
    el.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      event.preventDefault();
      el.focus({ preventScroll: true });
      el.setPointerCapture(event.pointerId);
      if (event.pointerType !== "touch") set(valueAt(event.clientX));
    });
    el.addEventListener("pointermove", (event) => {
      if (el.hasPointerCapture(event.pointerId)) set(valueAt(event.clientX));
    });
    el.addEventListener("pointerup", (event) => {
      if (event.pointerType === "touch" && el.hasPointerCapture(event.pointerId)) {
        set(valueAt(event.clientX));
      }
    });

    let typed = "";
    let typedAt = -Infinity;

    el.addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (/^[0-9]$/.test(event.key)) {
        event.preventDefault();
        const now = performance.now();
        // A pause, or a digit that would go past 100, starts a new number.
        const joined = typed + event.key;
        typed = now - typedAt < TYPING_PAUSE_MS && Number(joined) <= MAX ? joined : event.key;
        typedAt = now;
        set(Number(typed), "keyboard");
        return;
      }
      const ends = { Home: MIN, End: MAX };
      const moves = {
        ArrowRight: STEP, ArrowUp: STEP, ArrowLeft: -STEP, ArrowDown: -STEP,
        PageUp: PAGE, PageDown: -PAGE,
      };
      if (!(event.key in ends) && !(event.key in moves)) return;
      event.preventDefault(); // no page scrolling while adjusting the slider
      typed = "";
      if (event.key in ends) set(ends[event.key], "keyboard");
      else if (slider.value !== null) set(slider.value + moves[event.key], "keyboard");
      else askHowToStart(slider);
    });
    return slider;
  }

  const mixingEl = document.getElementById("mixing-slider");
  const class1 = mixingEl.dataset.left;
  const class2 = mixingEl.dataset.right;
  // The raw value is the share of class 2: 0 at the left end (100% class 1), 100 at the right.
  const mixing = makeSlider(mixingEl, (v) => `${100 - v}% ${class1}, ${v}% ${class2}`);
  const confidence = makeSlider(
    document.getElementById("confidence-slider"),
    (v) => `${v}% confident`,
  );

  // Said where the participant looks (the slider's readout) and announced (the live hint).
  function askHowToStart(slider) {
    const readout = document.getElementById(slider.el.dataset.name + "-readout");
    readout.textContent = HOW_TO_START;
    hint.hidden = false;
    hint.textContent = HOW_TO_START;
  }

  function unset() {
    return [mixing, confidence].filter((s) => s.value === null);
  }

  function sync() {
    const missing = unset();
    button.disabled = missing.length > 0;
    if (missing.length === 2) hint.textContent = "Set both sliders to continue.";
    else if (missing.length === 1) {
      hint.textContent = missing[0] === mixing
        ? "Now set the blend slider to continue."
        : "Now set the confidence slider to continue.";
    } else hint.textContent = "";
    hint.hidden = !hint.textContent;
    if (!missing.length) HMixTrial.showError("");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const missing = unset();
    if (missing.length) {
      HMixTrial.showError(NOT_SET);
      missing[0].el.focus();
      return;
    }
    HMixTrial.submit(
      {
        mixing: mixing.value,
        confidence: confidence.value,
        moved_mixing: true,
        moved_confidence: true,
        set_by: { mixing: mixing.setBy, confidence: confidence.setBy },
      },
      button,
    );
  });
  sync();
})();
