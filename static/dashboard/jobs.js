// Lists this study's export jobs on the study page and polls the unfinished ones
// (GET /api/jobs/<id>/, session-authenticated) until each is done, then shows its download link.
"use strict";

(function () {
  const root = document.getElementById("jobs");
  if (!root) return;
  const listUrl = root.dataset.url;
  const study = root.dataset.study;
  const SHOWN = 5;
  const POLL_MS = 1500;
  const KINDS = { bundle: "Dataset bundle", export: "Export", generate_stimuli: "Stimulus generation" };
  const FINISHED = ["done", "failed"];

  async function getJson(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return res.json();
  }

  function render(li, job) {
    li.dataset.status = job.status;
    const title = document.createElement("strong");
    title.textContent = `${KINDS[job.kind] || job.kind}: ${job.status}`;
    const bar = document.createElement("div");
    bar.className = "progress";
    const fill = document.createElement("div");
    fill.className = "progress-bar";
    fill.style.width = `${Math.round(job.progress * 100)}%`;
    bar.append(fill);
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(Math.round(job.progress * 100)));
    const note = document.createElement("span");
    note.className = "muted small job-message";
    note.textContent = job.status === "failed" ? job.error : job.message;
    const parts = [title, " ", note, bar];
    if (job.download_url) {
      const link = document.createElement("a");
      link.href = job.download_url;
      link.className = "job-download";
      link.textContent = "Download";
      parts.push(link);
    }
    li.replaceChildren(...parts);
  }

  function track(job) {
    const li = document.createElement("li");
    li.dataset.job = job.id;
    render(li, job);
    if (!FINISHED.includes(job.status)) {
      const timer = setInterval(async () => {
        try {
          const fresh = await getJson(`${listUrl}${job.id}/`);
          render(li, fresh);
          if (FINISHED.includes(fresh.status)) clearInterval(timer);
        } catch (err) { /* keep the last state; try again at the next tick */ }
      }, POLL_MS);
    }
    return li;
  }

  getJson(listUrl)
    .then((jobs) => {
      const mine = jobs.filter((j) => j.study === study).slice(0, SHOWN);
      if (mine.length) root.replaceChildren(...mine.map(track));
    })
    .catch(() => { /* the list stays as rendered */ });
})();
