// Interface A: most probable class and its share, an optional second class, and the classes
// nobody would choose. The same rules are enforced by the server; here they guide the person.
"use strict";

(function () {
  const form = document.getElementById("trial-form");
  const button = document.getElementById("submit-trial");
  const p1 = document.getElementById("p1");
  const p2 = document.getElementById("p2");

  const checked = (name) => form.querySelector(`input[name="${name}"]:checked`);

  function sync() {
    const top = checked("top_class")?.value || null;
    // The second class must differ from the first.
    form.querySelectorAll('input[name="second_class"]').forEach((el) => {
      el.disabled = el.value !== "" && el.value === top;
      if (el.disabled && el.checked) form.querySelector('input[name="second_class"][value=""]').checked = true;
    });
    const secondNow = checked("second_class")?.value || null;
    p2.disabled = !secondNow;
    if (!secondNow) p2.value = "";
    // A class chosen as probable cannot be ticked impossible.
    form.querySelectorAll('input[name="impossible"]').forEach((el) => {
      const chosen = el.value === top || el.value === secondNow;
      el.disabled = chosen;
      if (chosen) el.checked = false;
      el.closest("label").classList.toggle("disabled", chosen);
    });
  }

  function readPercent(input, label) {
    const text = input.value.trim();
    if (!/^\d{1,3}(\.\d+)?$/.test(text)) throw new Error(`Please enter the ${label} as a number from 0 to 100.`);
    const value = Number(text);
    if (value < 0 || value > 100) throw new Error(`The ${label} must be between 0 and 100.`);
    return value;
  }

  function collect() {
    const top = checked("top_class");
    if (!top) throw new Error("Please choose the most probable category.");
    const answer = { top_class: top.value, p1: readPercent(p1, "first share"), second_class: null, p2: null };
    const second = checked("second_class");
    if (second && second.value) {
      answer.second_class = second.value;
      answer.p2 = readPercent(p2, "second share");
      if (answer.p2 > answer.p1) throw new Error("The second category cannot be more probable than the first.");
      if (answer.p1 + answer.p2 > 100) throw new Error("The two shares add up to more than 100%.");
    }
    answer.impossible = Array.from(form.querySelectorAll('input[name="impossible"]:checked')).map((el) => el.value);
    return answer;
  }

  form.addEventListener("change", sync);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let answer;
    try { answer = collect(); } catch (err) { HMixTrial.showError(err.message); return; }
    HMixTrial.submit(answer, button);
  });
  sync();
})();
