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
    checkMass(answer);
    return answer;
  }

  // The server's rule (payloads._check_categorical_mass): what the stated shares leave over goes
  // to the classes neither chosen nor ruled impossible, none of which can be more probable than
  // the least probable stated class; so the shares must be able to add up to 100%.
  function checkMass(answer) {
    if (answer.p1 <= 0) throw new Error("The most probable category needs a share above 0%.");
    const nClasses = form.querySelectorAll('input[name="top_class"]').length;
    const chosen = answer.second_class ? 2 : 1;
    const open = nClasses - chosen - answer.impossible.length;
    const stated = answer.p1 + (answer.p2 ?? 0);
    const rest = 100 - stated;
    // Whole percentages: each share may be half a point off (33 / 33 / 34 is a tie).
    const slack = 0.5 * (chosen + open);
    if (open === 0 && rest > slack) {
      throw new Error(`The shares add up to ${+stated.toFixed(2)}% and every other category is ticked as impossible: they must add up to 100%.`);
    }
    const cap = answer.second_class ? answer.p2 : answer.p1;
    if (rest > open * cap + slack) {
      const which = answer.second_class ? "second" : "most probable";
      throw new Error(`The shares add up to ${+stated.toFixed(2)}%, which leaves ${+rest.toFixed(2)}% for the ${open} categories still possible; none of them can be more probable than the ${which} category (${cap}%), so together they hold at most ${+(open * cap).toFixed(2)}%.`);
    }
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
