// Leaving for the crowd platform at the end of a session: follow the completion link, or post
// the MTurk assignment form, after a short pause in which the code can still be read. The page
// is only rendered after the server stored the last answer, so leaving is safe.
"use strict";

(function () {
  const DELAY_MS = 4000;
  const link = document.querySelector("[data-exit-redirect]");
  const form = document.querySelector("form[data-exit-submit]");
  if (link) setTimeout(() => { window.location.href = link.href; }, DELAY_MS);
  else if (form) setTimeout(() => { form.submit(); }, DELAY_MS);
})();
