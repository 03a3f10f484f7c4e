// Paging through the instruction pages is presentation only: the server records nothing until
// the final submit.
(function () {
  const pages = Array.from(document.querySelectorAll(".instruction-page"));
  const prev = document.getElementById("prev-page");
  const next = document.getElementById("next-page");
  const done = document.getElementById("instructions-done");
  let i = 0;
  function show() {
    pages.forEach((p, j) => { p.hidden = j !== i; });
    prev.disabled = i === 0;
    next.hidden = i === pages.length - 1;
    done.hidden = i !== pages.length - 1;
    window.scrollTo(0, 0);
  }
  prev.hidden = false;
  prev.addEventListener("click", () => { if (i > 0) { i -= 1; show(); } });
  next.addEventListener("click", () => { if (i < pages.length - 1) { i += 1; show(); } });
  show();
})();
