// Progress bars carry their fill as data-percent: the Content-Security-Policy (style-src 'self')
// refuses style attributes in the markup, while styles set from a script are allowed.
document.querySelectorAll("[data-percent]").forEach((bar) => {
  bar.style.width = `${Number(bar.dataset.percent) || 0}%`;
});
