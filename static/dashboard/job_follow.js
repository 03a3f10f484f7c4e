// Follows a worker job on its page (a legacy import, an image-set upload, a stimulus
// generation): polls /api/jobs/<id>/ (session auth) until it is done or failed, then shows the
// link to what it made or the reason it made nothing. The page gives the job's URL in the
// `job-config` JSON script and holds the job-* elements.
"use strict";

(function () {
  const configEl = document.getElementById("job-config");
  if (!configEl) return;
  const config = JSON.parse(configEl.textContent);
  const el = (id) => document.getElementById(id);
  const POLL_MS = 1000;
  const FINISHED = ["done", "failed", "cancelled"];

  function render(job) {
    const percent = Math.round(100 * job.progress);
    el("job-status").textContent = job.status.charAt(0).toUpperCase() + job.status.slice(1);
    el("job-status").dataset.status = job.status;
    el("job-bar").style.width = `${percent}%`;
    el("job-percent").textContent = `${percent}%`;
    el("job-progress").setAttribute("aria-valuenow", String(percent));
    el("job-message").textContent = job.message;
    el("job-error").textContent = job.error;
    el("job-error").hidden = job.status !== "failed";
    el("job-retry").hidden = !["failed", "cancelled"].includes(job.status);
    // IRI jobs' pages have a cancel button, pointless once the job has ended.
    if (el("job-cancel")) el("job-cancel").hidden = FINISHED.includes(job.status);
    el("job-done").hidden = job.status !== "done";
  }

  async function poll() {
    let job = null;
    try {
      const res = await fetch(config.job_url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (res.ok) job = await res.json();
    } catch (err) { /* a network blip: try again at the next tick */ }
    if (job) render(job);
    if (!job || !FINISHED.includes(job.status)) setTimeout(poll, POLL_MS);
  }
  if (!FINISHED.includes(el("job-status").dataset.status)) poll();
})();
