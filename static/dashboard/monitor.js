// Refreshes the live monitor from monitor.json every few seconds (no page reloads).
"use strict";

(function () {
  const root = document.getElementById("monitor");
  if (!root) return;
  const url = root.dataset.url;
  const set = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };

  function render(m) {
    set("m-responses", m.responses);
    set("m-median", m.median_rt_s ?? "–");
    set("m-stimuli", `${m.stimuli_answered} / ${m.stimuli_total}`);
    set("m-min", m.min_answers_per_stimulus);
    document.querySelectorAll("#m-stages li").forEach((li) => {
      li.querySelector("strong").textContent = m.stages[li.dataset.stage] || 0;
    });
    m.batches.forEach((b) => {
      const row = document.querySelector(`#m-batches tr[data-batch="${b.number}"]`);
      if (!row) return;
      row.querySelector(".done").textContent = b.completed;
      row.querySelector(".active").textContent = b.in_progress;
      row.querySelector(".progress-bar").style.width = `${b.percent}%`;
    });
    document.querySelector("#m-stimuli-table tbody").replaceChildren(...m.answers_histogram.map((row) => {
      const tr = document.createElement("tr");
      for (const value of [row.answers, row.stimuli]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    }));
    const list = document.getElementById("m-exclusions");
    list.replaceChildren(...(m.recent_exclusions.length ? m.recent_exclusions : [null]).map((e) => {
      const li = document.createElement("li");
      if (e) li.textContent = `${e.participant}: ${e.stage}`;
      else { li.textContent = "None"; li.className = "muted"; }
      return li;
    }));
    set("m-too-fast", m.too_fast_responses);
    set("m-straight", m.straight_lining_participants);
    const flagged = document.getElementById("m-flagged");
    flagged.replaceChildren(...(m.flagged.length ? m.flagged : [null]).map((f) => {
      const li = document.createElement("li");
      if (f) li.textContent = `${f.participant}: ${f.fast_answers} too fast${f.straight_lining ? ", same answer throughout" : ""}`;
      else { li.textContent = "None"; li.className = "muted"; }
      return li;
    }));
    set("monitor-updated", `updated ${new Date().toLocaleTimeString()}`);
  }

  async function poll() {
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" } });
      if (res.ok) render(await res.json());
    } catch (err) { /* keep the last figures; try again at the next tick */ }
  }
  setInterval(poll, 5000);
})();
